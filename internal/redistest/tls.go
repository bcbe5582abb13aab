package redistest

import "github.com/baton-pub/baton/internal/testcerts"

// TLSFiles are PEM files of a test CA and a server certificate it signed,
// valid for 127.0.0.1, ::1 and localhost.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// writeTLSFiles makes a CA and a server certificate in dir.
func writeTLSFiles(dir string) (TLSFiles, error) {
	ca, err := testcerts.NewCA(dir, "ca")
	if err != nil {
		return TLSFiles{}, err
	}
	p, err := ca.Issue("server", testcerts.Server)
	if err != nil {
		return TLSFiles{}, err
	}
	return TLSFiles{CAFile: ca.CertFile, CertFile: p.CertFile, KeyFile: p.KeyFile}, nil
}

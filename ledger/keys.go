package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/baton-pub/baton"
)

// Key is a node's Ed25519 signing key. The note key name is the node id, so
// a signature line names the node that made it.
type Key struct {
	Node    string
	Public  ed25519.PublicKey
	private ed25519.PrivateKey
	signer  note.Signer
}

// KeyFile and PublicKeyFile are the names of the key files in a data dir.
const (
	KeyFile       = "node.key" // base64 Ed25519 seed, mode 0600
	PublicKeyFile = "node.pub" // the note verifier key, for pinning
)

// NewKey makes a key for node from an Ed25519 seed.
func NewKey(node string, seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("new key: seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(node, pub)
	if err != nil {
		return nil, fmt.Errorf("new key for node %q: %w", node, err)
	}
	// vkey is name+hash+base64(alg||pub); the signer key is the same with
	// the seed in place of the public key.
	parts := strings.SplitN(vkey, "+", 3)
	skey := "PRIVATE+KEY+" + parts[0] + "+" + parts[1] + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{1}, seed...))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("new key for node %q: %w", node, err)
	}
	return &Key{Node: node, Public: pub, private: priv, signer: s}, nil
}

// GenerateKey makes a fresh random key for node.
func GenerateKey(node string) (*Key, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return NewKey(node, seed)
}

// LoadOrCreateKey reads the node's key from dir/node.key, making it (mode
// 0600, dir 0700) on first start. It also writes dir/node.pub, the verifier
// key to pin (see VerifierKey). The key is bound to the node id only by name:
// renaming a node keeps its key.
func LoadOrCreateKey(dir, node string) (*Key, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		seed, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil {
			return nil, fmt.Errorf("read node key %s: not base64", path)
		}
		if fi, serr := os.Stat(path); serr == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("read node key %s: mode %v is readable by others (want 0600)", path, fi.Mode().Perm())
		}
		k, err := NewKey(node, seed)
		if err != nil {
			return nil, fmt.Errorf("read node key %s: %w", path, err)
		}
		return k, k.writePublic(dir)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("read node key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	k, err := GenerateKey(node)
	if err != nil {
		return nil, err
	}
	enc := base64.StdEncoding.EncodeToString(k.private.Seed()) + "\n"
	// O_EXCL: two processes sharing a data dir by mistake do not overwrite
	// each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create node key: %w", err)
	}
	if _, err := f.WriteString(enc); err != nil {
		f.Close()
		return nil, fmt.Errorf("write node key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("write node key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write node key: %w", err)
	}
	return k, k.writePublic(dir)
}

func (k *Key) writePublic(dir string) error {
	v, err := k.VerifierKey()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, PublicKeyFile), []byte(v+"\n"), 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	return nil
}

// VerifierKey is the note verifier key ("node+hash+base64"), safe to share.
func (k *Key) VerifierKey() (string, error) { return note.NewEd25519VerifierKey(k.Node, k.Public) }

// String never shows the private key.
func (k *Key) String() string { return "ledger key of " + k.Node }

// LogValue keeps the private key out of structured logs.
func (k *Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Keys are the public keys checkpoints and cosignatures are checked with:
// several per node are allowed (a node whose data dir was lost makes a new
// key; its old signatures stay valid).
type Keys struct {
	byNode map[string][]ed25519.PublicKey
	list   []note.Verifier
}

// NewKeys builds Keys from registered node keys. Keys that are not Ed25519
// public keys are skipped.
func NewKeys(nks []baton.NodeKey) *Keys {
	ks := &Keys{byNode: make(map[string][]ed25519.PublicKey)}
	for _, nk := range nks {
		ks.Add(nk.Node, nk.PublicKey)
	}
	return ks
}

// Add adds one node's public key.
func (ks *Keys) Add(node string, pub []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	vkey, err := note.NewEd25519VerifierKey(node, ed25519.PublicKey(pub))
	if err != nil {
		return false
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return false
	}
	for _, p := range ks.byNode[node] {
		if p.Equal(ed25519.PublicKey(pub)) {
			return true
		}
	}
	ks.byNode[node] = append(ks.byNode[node], ed25519.PublicKey(pub))
	ks.list = append(ks.list, v)
	return true
}

// AddVerifierKey adds a note verifier key ("name+hash+base64"), as pinned
// in a key file.
func (ks *Keys) AddVerifierKey(vkey string) error {
	vkey = strings.TrimSpace(vkey)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("parse verifier key: %w", err)
	}
	parts := strings.SplitN(vkey, "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return fmt.Errorf("parse verifier key: not an Ed25519 key")
	}
	ks.byNode[v.Name()] = append(ks.byNode[v.Name()], ed25519.PublicKey(raw[1:]))
	ks.list = append(ks.list, v)
	return nil
}

// Has reports whether node has at least one key.
func (ks *Keys) Has(node string) bool { return len(ks.byNode[node]) > 0 }

// Nodes is the number of nodes with keys.
func (ks *Keys) Nodes() int { return len(ks.byNode) }

// verifiers returns the note verifiers of node only (nil: all nodes).
func (ks *Keys) verifiers(node string) note.Verifiers {
	var vs []note.Verifier
	for _, v := range ks.list {
		if node == "" || v.Name() == node {
			vs = append(vs, v)
		}
	}
	return note.VerifierList(vs...)
}

// VerifierKeyOf is the note verifier key of a registered node key.
func VerifierKeyOf(nk baton.NodeKey) (string, error) {
	if len(nk.PublicKey) != ed25519.PublicKeySize {
		return "", fmt.Errorf("key of %s is not an Ed25519 public key", nk.Node)
	}
	return note.NewEd25519VerifierKey(nk.Node, ed25519.PublicKey(nk.PublicKey))
}

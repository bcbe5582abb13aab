package http

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	nethttp "net/http"
	"strconv"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// appendPublishResponse appends resp's JSON, byte for byte what writeJSON
// (encoding/json without HTML escaping) gives, newline included. An
// append's receipts are the largest answer on the ingest path; written by
// hand they cost a fraction of the reflective encoder's CPU and no
// allocations (BenchmarkPublishResponse; docs/benchmarks.md, change 20).
func appendPublishResponse(b []byte, resp wire.PublishResponse) []byte {
	b = append(b, '{')
	if resp.Receipt != nil {
		b = appendReceiptFields(b, *resp.Receipt)
		b = append(b, ',')
	}
	b = append(b, `"items":`...)
	if resp.Items == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range resp.Items {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = appendReceiptFields(b, r)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...)
}

func appendReceiptFields(b []byte, r baton.Receipt) []byte {
	b = append(b, `"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"hash":"`...)
	b = hex.AppendEncode(b, r.Hash[:])
	b = append(b, `","msg_id":`...)
	b = appendJSONString(b, r.MsgID)
	b = append(b, `,"duplicate":`...)
	return strconv.AppendBool(b, r.Duplicate)
}

// appendJSONString appends s as a JSON string the way writeJSON's encoder
// writes it: printable ASCII other than '"' and '\' goes as it is, and
// anything else is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s) // a string always encodes
			return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// writePublishResponse answers an append with its receipts.
func writePublishResponse(w nethttp.ResponseWriter, status int, resp wire.PublishResponse) {
	writeBody(w, status, appendPublishResponse(make([]byte, 0, 64+130*len(resp.Items)), resp))
}

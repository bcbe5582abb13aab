package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/wire"
)

// Diagnose fetches one node's (base URL, or the first that answers if
// node is empty) diagnosis of topic's ledger: where the store and that
// node's copy part (the admin right; docs/ledger.md, "Lost writes and
// re-anchoring").
func (c *Client) Diagnose(ctx context.Context, node, topic string) (ledger.Diagnosis, error) {
	var d ledger.Diagnosis
	err := c.first(ctx, node, func(base string) error {
		return c.do(ctx, http.MethodGet, base, "/v1/topics/"+url.PathEscape(topic)+"/ledger/diagnose", nil, &d)
	})
	return d, err
}

// Reanchor asks one node (base URL, or the first that answers if node is
// empty) to sign and store a re-anchor of topic's ledger from seq from,
// for reason (the admin right). It is not retried on another node once
// one answered: a second re-anchor would be a second record.
func (c *Client) Reanchor(ctx context.Context, node, topic string, from uint64, reason string) (ledger.ReanchorBody, error) {
	body, err := json.Marshal(wire.ReanchorRequest{From: &from, Reason: reason})
	if err != nil {
		return ledger.ReanchorBody{}, fmt.Errorf("re-anchor: %w", err)
	}
	var b ledger.ReanchorBody
	path := "/v1/topics/" + url.PathEscape(topic) + "/ledger/reanchor"
	if node != "" {
		err = c.do(ctx, http.MethodPost, node, path, body, &b)
	} else {
		err = c.admin(ctx, func(base string) error { return c.do(ctx, http.MethodPost, base, path, body, &b) })
	}
	return b, err
}

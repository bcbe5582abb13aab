package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// ErrTopicDeleted is returned by Subscribe when the topic was deleted
// while it streamed (a "deleted" event): resuming would only wait for a
// new topic of that name.
var ErrTopicDeleted = errors.New("topic deleted")

// DeleteTopic deletes topic through the first node that answers (an admin
// right): its queue, lock and retention go, and its ledger too only if
// ledger is set (docs/api.md, "Topic lifecycle"). A topic that does not
// exist is a *wire.Error with code not_found.
func (c *Client) DeleteTopic(ctx context.Context, topic string, ledger bool) (baton.Deletion, error) {
	path := "/v1/topics/" + url.PathEscape(topic)
	if ledger {
		path += "?ledger=delete"
	}
	var out wire.DeleteResponse
	err := c.admin(ctx, func(base string) error {
		return c.do(ctx, http.MethodDelete, base, path, nil, &out)
	})
	return out.Deleted, err
}

// Retention reads topic's retention, and the limits the node applies.
func (c *Client) Retention(ctx context.Context, topic string) (wire.RetentionResponse, error) {
	var out wire.RetentionResponse
	err := c.admin(ctx, func(base string) error {
		return c.do(ctx, http.MethodGet, base, "/v1/topics/"+url.PathEscape(topic)+"/retention", nil, &out)
	})
	return out, err
}

// SetRetention replaces topic's retention (wire.Retention{} goes back to
// the nodes' defaults).
func (c *Client) SetRetention(ctx context.Context, topic string, r wire.Retention) (wire.RetentionResponse, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return wire.RetentionResponse{}, fmt.Errorf("set retention: %w", err)
	}
	var out wire.RetentionResponse
	err = c.admin(ctx, func(base string) error {
		return c.do(ctx, http.MethodPut, base, "/v1/topics/"+url.PathEscape(topic)+"/retention", body, &out)
	})
	return out, err
}

// admin asks the client's nodes in turn until one answers: a 4xx answer
// is the answer too (a DELETE that went through and lost its answer is
// then a 404 from the next node, said as such in docs/api.md).
func (c *Client) admin(ctx context.Context, call func(base string) error) error {
	var err error
	for _, b := range c.nodes {
		err = call(b)
		var ae *wire.Error
		if err == nil || ctx.Err() != nil || errors.As(err, &ae) && ae.Status < 500 {
			return err
		}
	}
	return err
}

// Package proposers keeps, per topic, the publisher registered with a
// store handle to publish on append (baton.AppendPublisher): the one
// registry the engines that offer it share.
package proposers

import (
	"sync"

	"github.com/baton-pub/baton"
)

// Registry is the proposers registered on one store handle, by topic. The
// zero value is ready to use.
type Registry struct {
	mu sync.Mutex
	by map[string]*entry
}

// entry is one registration: stop removes it only if it is still the
// topic's.
type entry struct{ p baton.Proposer }

// Register makes p topic's proposer (baton.AppendPublisher.PublishOnAppend);
// stop ends the registration if p is still the one registered.
func (r *Registry) Register(topic string, p baton.Proposer) (stop func()) {
	e := &entry{p: p}
	r.mu.Lock()
	if r.by == nil {
		r.by = make(map[string]*entry)
	}
	r.by[topic] = e
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		if r.by[topic] == e {
			delete(r.by, topic)
		}
		r.mu.Unlock()
	}
}

// Get returns topic's registered proposer, or nil.
func (r *Registry) Get(topic string) baton.Proposer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.by[topic]; e != nil {
		return e.p
	}
	return nil
}

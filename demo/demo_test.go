package demo

import (
	"errors"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Nodes: 3, Terminals: 3, Rate: 200, LeaseTTL: 2 * time.Second}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for field, mut := range map[string]func(*Config){
		"--nodes":     func(c *Config) { c.Nodes = 1 },
		"--rate":      func(c *Config) { c.Rate = 0 },
		"--terminals": func(c *Config) { c.Terminals = 1001 },
	} {
		c := good
		mut(&c)
		var ie *baton.InvalidError
		if err := c.Validate(); !errors.As(err, &ie) || ie.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

// TestEpochsAfter: a hand-over ends at the first item any terminal got
// from a later epoch, whichever terminal saw it first.
func TestEpochsAfter(t *testing.T) {
	var e epochs
	if at, _, _ := e.after(0); !at.IsZero() {
		t.Fatalf("empty: %v", at)
	}
	t0 := time.Unix(100, 0)
	e.seen(wire.Item{Epoch: 1, Publisher: "n1"}, t0)
	e.seen(wire.Item{Epoch: 2, Publisher: "n3"}, t0.Add(time.Second))
	e.seen(wire.Item{Epoch: 2, Publisher: "n3"}, t0.Add(2*time.Second)) // a slower terminal, reporting later
	if at, _, _ := e.after(2); !at.IsZero() {
		t.Errorf("after the last epoch: %v", at)
	}
	at, pub, epoch := e.after(1)
	if !at.Equal(t0.Add(time.Second)) || pub != "n3" || epoch != 2 {
		t.Errorf("after(1) = %v %s %d", at, pub, epoch)
	}
}

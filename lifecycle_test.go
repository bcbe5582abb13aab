package baton_test

import (
	"errors"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// TestRetentionBounds: ValidateRetention takes 0, Unlimited and the values
// within the bounds, and names the field of anything else.
func TestRetentionBounds(t *testing.T) {
	for _, c := range []struct {
		r     baton.Retention
		field string
	}{
		{baton.Retention{}, ""},
		{baton.Retention{Items: baton.Unlimited, Age: baton.Unlimited}, ""},
		{baton.Retention{Items: 1, Age: baton.MinRetainAge}, ""},
		{baton.Retention{Items: baton.MaxRetainItems, Age: baton.MaxRetainAge}, ""},
		{baton.Retention{Items: -2}, "items"},
		{baton.Retention{Items: baton.MaxRetainItems + 1}, "items"},
		{baton.Retention{Age: baton.MinRetainAge - time.Millisecond}, "age"},
		{baton.Retention{Age: baton.MaxRetainAge + time.Millisecond}, "age"},
		{baton.Retention{Age: -2}, "age"},
		{baton.Retention{Age: 2*time.Second + time.Microsecond}, "age"},
	} {
		err := baton.ValidateRetention("t", c.r)
		var ie *baton.InvalidError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("ValidateRetention(%+v) = %v, want nil", c.r, err)
		case c.field != "" && (!errors.As(err, &ie) || ie.Field != c.field):
			t.Errorf("ValidateRetention(%+v) = %v, want an invalid %q", c.r, err, c.field)
		}
	}
	if err := baton.ValidateRetention("-t", baton.Retention{}); !errors.Is(err, baton.ErrInvalid) {
		t.Errorf("ValidateRetention of a bad topic = %v", err)
	}
}

// TestRetentionEffective: a topic's own limits replace the node's,
// Unlimited lifts them, 0 keeps them.
func TestRetentionEffective(t *testing.T) {
	for _, c := range []struct {
		r     baton.Retention
		items uint64
		age   time.Duration
	}{
		{baton.Retention{}, 100, time.Hour},
		{baton.Retention{Items: 5}, 5, time.Hour},
		{baton.Retention{Age: time.Minute}, 100, time.Minute},
		{baton.Retention{Items: baton.Unlimited, Age: baton.Unlimited}, 0, 0},
	} {
		items, age := c.r.Effective(100, time.Hour)
		if items != c.items || age != c.age {
			t.Errorf("%+v.Effective(100, 1h) = %d, %v; want %d, %v", c.r, items, age, c.items, c.age)
		}
	}
}

// FuzzParseAge: ParseAge either refuses a string as an invalid "age" or
// returns a duration that FormatAge writes back to the same duration.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"", "0", "none", "24h", "1.5s", "-1h", "1e9h", "9223372036854775807ns", "1h1m1s1ms1us1ns", "soon"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := baton.ParseAge(s)
		if err != nil {
			var ie *baton.InvalidError
			if !errors.As(err, &ie) || ie.Field != "age" {
				t.Fatalf("ParseAge(%q): %v is not an invalid age", s, err)
			}
			return
		}
		if d < 0 && d != baton.Unlimited {
			t.Fatalf("ParseAge(%q) = %v", s, d)
		}
		back, err := baton.ParseAge(baton.FormatAge(d))
		if err != nil || back != d {
			t.Fatalf("ParseAge(%q) = %v, written %q, read back %v, %v", s, d, baton.FormatAge(d), back, err)
		}
	})
}

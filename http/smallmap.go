package http

import "iter"

// smallMapSlots is how many entries a smallMap keeps in its slice before
// it moves them to a map.
const smallMapSlots = 8

// smallMap is a map keyed by topic that holds its first few entries in a
// slice: a stream or socket of one or a few topics, the common case, pays
// for no Go map (a map's first group alone is about 200 bytes, more than
// the rest of an idle socket's topic). The zero value is empty.
type smallMap[V any] struct {
	s []smallEntry[V]
	m map[string]V // all the entries, once there were more than smallMapSlots
}

type smallEntry[V any] struct {
	k string
	v V
}

func (sm *smallMap[V]) get(k string) (v V, ok bool) {
	if sm.m != nil {
		v, ok = sm.m[k]
		return v, ok
	}
	for _, e := range sm.s {
		if e.k == k {
			return e.v, true
		}
	}
	return v, false
}

func (sm *smallMap[V]) has(k string) bool {
	_, ok := sm.get(k)
	return ok
}

func (sm *smallMap[V]) set(k string, v V) {
	if sm.m != nil {
		sm.m[k] = v
		return
	}
	for i := range sm.s {
		if sm.s[i].k == k {
			sm.s[i].v = v
			return
		}
	}
	if len(sm.s) < smallMapSlots {
		sm.s = append(sm.s, smallEntry[V]{k, v})
		return
	}
	sm.m = make(map[string]V, 2*smallMapSlots)
	for _, e := range sm.s {
		sm.m[e.k] = e.v
	}
	sm.m[k] = v
	sm.s = nil
}

func (sm *smallMap[V]) del(k string) {
	if sm.m != nil {
		delete(sm.m, k)
		return
	}
	for i := range sm.s {
		if sm.s[i].k == k {
			last := len(sm.s) - 1
			sm.s[i] = sm.s[last]
			sm.s[last] = smallEntry[V]{}
			sm.s = sm.s[:last]
			return
		}
	}
}

func (sm *smallMap[V]) len() int {
	if sm.m != nil {
		return len(sm.m)
	}
	return len(sm.s)
}

// all yields every entry, in no set order. The map must not change
// while it runs.
func (sm *smallMap[V]) all() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		if sm.m != nil {
			for k, v := range sm.m {
				if !yield(k, v) {
					return
				}
			}
			return
		}
		for _, e := range sm.s {
			if !yield(e.k, e.v) {
				return
			}
		}
	}
}

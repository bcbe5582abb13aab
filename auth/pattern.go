package auth

import (
	"fmt"
	"strings"

	"github.com/baton-pub/baton"
)

// A Pattern selects topics: "*" selects every topic, "prefix.*" every topic
// whose name starts with "prefix." (at any depth: "quotes.*" selects
// "quotes.sh.600519"), and anything else exactly the topic of that name.
type Pattern string

// ParsePattern checks a pattern: "*", a topic name, or a topic name
// followed by ".*".
func ParsePattern(s string) (Pattern, error) {
	if s == "*" {
		return Pattern(s), nil
	}
	name, wild := strings.CutSuffix(s, ".*")
	if err := baton.ValidTopic(name); err != nil {
		return "", fmt.Errorf("topic pattern %q: want *, NAME or NAME.*", s)
	}
	if wild && len(name)+2 > baton.MaxTopicLen {
		return "", fmt.Errorf("topic pattern %q: selects no topic (names are at most %d characters)", s, baton.MaxTopicLen)
	}
	return Pattern(s), nil
}

// Match reports whether the pattern selects topic.
func (p Pattern) Match(topic string) bool {
	if p == "*" {
		return true
	}
	if prefix, wild := strings.CutSuffix(string(p), "*"); wild {
		return len(topic) > len(prefix) && strings.HasPrefix(topic, prefix)
	}
	return string(p) == topic
}

// Patterns is a list of patterns; it selects a topic any of them selects.
type Patterns []Pattern

// ParsePatterns parses every pattern of list.
func ParsePatterns(list []string) (Patterns, error) {
	ps := make(Patterns, 0, len(list))
	for _, s := range list {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Match reports whether any pattern selects topic.
func (ps Patterns) Match(topic string) bool {
	for _, p := range ps {
		if p.Match(topic) {
			return true
		}
	}
	return false
}

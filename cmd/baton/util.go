package main

import (
	"net/http"
	"time"

	"github.com/baton-pub/baton/dial"
)

var shortHTTP = &http.Client{Timeout: 2 * time.Second}

func redactURL(s string) string { return dial.Redact(s) }

package http

import (
	"errors"
	nethttp "net/http"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// statusOf is the one table from error codes to HTTP status codes.
var statusOf = map[string]int{
	baton.CodeInvalid:      nethttp.StatusBadRequest,
	baton.CodeUnauthorized: nethttp.StatusUnauthorized,
	baton.CodeForbidden:    nethttp.StatusForbidden,
	baton.CodeRateLimited:  nethttp.StatusTooManyRequests,
	baton.CodeMediaType:    nethttp.StatusUnsupportedMediaType,
	baton.CodeTooMany:      nethttp.StatusTooManyRequests,
	baton.CodeNotFound:     nethttp.StatusNotFound,
	baton.CodeMethod:       nethttp.StatusMethodNotAllowed,
	baton.CodeConflict:     nethttp.StatusConflict,
	baton.CodeGone:         nethttp.StatusGone,
	baton.CodeTooLarge:     nethttp.StatusRequestEntityTooLarge,
	baton.CodeUnavailable:  nethttp.StatusServiceUnavailable,
	baton.CodeInternal:     nethttp.StatusInternalServerError,
}

// StatusOf returns the HTTP status code of an error code (500 if unknown).
func StatusOf(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return nethttp.StatusInternalServerError
}

// toError turns any error into what the client is told. Internal and
// availability errors get a fixed message: their text may name hosts,
// files or credentials of the store, which is for the log only.
func toError(err error) *wire.Error {
	var e *wire.Error
	if errors.As(err, &e) {
		return e
	}
	code := baton.ErrorCode(err)
	out := &wire.Error{Code: code, Message: err.Error()}
	switch code {
	case baton.CodeInternal:
		out.Message = "internal error"
	case baton.CodeUnavailable:
		out.Message = "store unavailable"
		if errors.Is(err, baton.ErrClosed) {
			out.Message = "server shutting down"
		}
	case baton.CodeInvalid:
		var ie *baton.InvalidError
		if errors.As(err, &ie) {
			out.Field = ie.Field
			out.Message = ie.Error()
		}
	}
	return out
}

// writeError answers with err as JSON, with the request's id. Server-side
// failures are logged with their detail; client errors only at debug level,
// and never with payloads.
func (s *Server) writeError(w nethttp.ResponseWriter, r *nethttp.Request, err error) {
	e := *toError(err) // a copy: toError may return a shared *wire.Error
	e.RequestID = requestID(r)
	status := StatusOf(e.Code)
	log := s.logFor(r)
	if status >= 500 {
		log.Error("http: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		log.Debug("http: request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", e.Message)
	}
	writeJSON(w, status, wire.ErrorResponse{Error: &e})
}

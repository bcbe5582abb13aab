package http

import (
	"errors"
	"fmt"
	nethttp "net/http"

	"github.com/baton-pub/baton"
)

// Error is the body of every error response, {"error": {...}}, and the error
// a client gets back from a Baton server.
type Error struct {
	// Code is one of the baton.Code* constants.
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the bad input, e.g. "items[3].id", when known.
	Field string `json:"field,omitempty"`
	// Earliest is the earliest seq still kept, on a "gone" error.
	Earliest uint64 `json:"earliest,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorResponse is the JSON envelope of an error response.
type ErrorResponse struct {
	Error *Error `json:"error"`
}

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
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	code := baton.ErrorCode(err)
	out := &Error{Code: code, Message: err.Error()}
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

// writeError answers with err as JSON. Server-side failures are logged with
// their detail; client errors only at debug level, and never with payloads.
func (s *Server) writeError(w nethttp.ResponseWriter, r *nethttp.Request, err error) {
	e := toError(err)
	status := StatusOf(e.Code)
	if status >= 500 {
		s.log.Error("http: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		s.log.Debug("http: request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", e.Message)
	}
	writeJSON(w, status, ErrorResponse{Error: e})
}

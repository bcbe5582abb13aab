// Command baton is the Baton server and its command-line tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// defaultGOGC is the garbage collector's target unless GOGC is set. A
// node's live heap is small (tens of MB) and its garbage is per request
// (bodies, replies, frames), so collecting less often buys throughput for
// a little memory per connection (docs/benchmarks.md, change 19). Set
// GOGC to choose another, and GOMEMLIMIT to cap the heap.
const defaultGOGC = 400

func main() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(defaultGOGC)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "baton:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a code after its own report was printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "baton",
		Short:         "Baton: a highly available, ordered data publisher",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe(), newPublish(), newSubscribe(), newStatus(), newDemo(), newBench(), newChaos(), newLedger(), newToken(), newTop(), newDrain(), newTopic())
	return root
}

// envOr returns the environment variable key, or def.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

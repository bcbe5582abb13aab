package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newBench() *cobra.Command {
	return &cobra.Command{
		Use:    "bench",
		Short:  "not built yet",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("bench: not built yet") },
	}
}

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newLedger() *cobra.Command {
	return &cobra.Command{
		Use:    "ledger",
		Short:  "not built yet",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("ledger: not built yet") },
	}
}

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newChaos() *cobra.Command {
	return &cobra.Command{
		Use:    "chaos",
		Short:  "not built yet",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("chaos: not built yet") },
	}
}

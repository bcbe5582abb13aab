//go:build !unix

package bench

import (
	"errors"
	"time"
)

// selfCPU is not measured here: the generator's CPU reads 0.
func selfCPU() time.Duration { return 0 }

// raiseNoFile: no open-file limit to raise here.
func raiseNoFile() (uint64, error) {
	return 0, errors.New("no open-file limit on this system")
}

package authtest

import "errors"

// errPortTaken means another process bound Dendrite's port between
// freePort and Dendrite's start; Start retries on another port.
var errPortTaken = errors.New("dendrite's port was taken")

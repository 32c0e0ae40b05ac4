package main

import (
	stoaauth "github.com/stoa-rtc/stoa/auth"
	"github.com/stoa-rtc/stoa/signalling"
)

// The authorisation service drives the SFU through signalling.Server; this
// fails to compile if the two drift apart. It lives here because signalling
// does not import auth.
var _ stoaauth.SFU = (*signalling.Server)(nil)

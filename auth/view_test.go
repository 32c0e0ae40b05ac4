package auth

import (
	"testing"
	"time"
)

func TestTicketsSweepExpired(t *testing.T) {
	var ts tickets
	present := map[string]bool{"kept": true}
	isPresent := func(_, identity string) bool { return present[identity] }
	ts.add(Ticket{Alias: "a", Identity: "kept"}, 0, isPresent)
	ts.add(Ticket{Alias: "a", Identity: "gone"}, 0, isPresent)
	for range ticketSweepEvery - 3 {
		ts.add(Ticket{Alias: "b", Identity: "B"}, time.Hour, isPresent)
	}
	if _, ok := ts.get("a", "gone"); !ok {
		t.Fatal("a ticket was dropped before its sweep")
	}
	// The sweeping add: with a zero age every ticket is old.
	ts.add(Ticket{Alias: "c", Identity: "C"}, 0, isPresent)
	if _, ok := ts.get("a", "gone"); ok {
		t.Fatal("an old ticket of a participant who is not connected was kept")
	}
	if _, ok := ts.get("a", "kept"); !ok {
		t.Fatal("the ticket of a connected participant was dropped")
	}
	if _, ok := ts.get("c", "C"); !ok {
		t.Fatal("the ticket being added was dropped")
	}
}

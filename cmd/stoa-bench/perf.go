package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// perfToPprof converts the output of `perf script -F
// comm,tid,time,period,event,ip,sym,dso` (samples recorded with -g) into a
// gzipped pprof profile, so `go tool pprof` reads a perf recording of any
// process: Stoa has no pprof endpoint, and perf also sees kernel time.
//
// Each sample becomes a pprof sample with two values, the sample count and
// the event period (nanoseconds for cpu-clock); each distinct symbol in a
// binary becomes one function and one location.
func perfToPprof(r io.Reader, w io.Writer) error {
	b := newPprofBuilder()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var stack []uint64
	var period int64
	inSample := false
	flush := func() {
		if inSample && len(stack) > 0 {
			b.samples = append(b.samples, pprofSample{locs: stack, period: period})
		}
		stack, inSample = nil, false
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == '\t':
			sym, dso := parsePerfFrame(strings.TrimSpace(line))
			stack = append(stack, b.location(sym, dso))
		default:
			flush()
			inSample = true
			period = parsePerfPeriod(line)
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return err
	}
	if len(b.samples) == 0 {
		return errors.New("perf2pprof: no samples with call stacks in the input")
	}
	zw := gzip.NewWriter(w)
	if _, err := zw.Write(b.marshal()); err != nil {
		return err
	}
	return zw.Close()
}

// parsePerfFrame splits "ADDR SYM (DSO)".
func parsePerfFrame(s string) (sym, dso string) {
	_, rest, ok := strings.Cut(s, " ")
	if !ok {
		return "[unknown]", "[unknown]"
	}
	rest = strings.TrimSpace(rest)
	if i := strings.LastIndex(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
		sym, dso = rest[:i], rest[i+2:len(rest)-1]
	} else {
		sym, dso = rest, "[unknown]"
	}
	if i := strings.LastIndex(sym, "+0x"); i > 0 {
		sym = sym[:i]
	}
	return sym, dso
}

// parsePerfPeriod reads the period, the field before the event name that
// ends the sample header: "comm tid time: period event:".
func parsePerfPeriod(line string) int64 {
	f := strings.Fields(line)
	if len(f) >= 2 {
		if v, err := strconv.ParseInt(f[len(f)-2], 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 1
}

type pprofSample struct {
	locs   []uint64
	period int64
}

type pprofBuilder struct {
	strings  []string
	strIndex map[string]int64
	mappings map[string]uint64 // dso -> id
	mapOrder []string
	locs     map[[2]string]uint64 // (sym, dso) -> location id == function id
	locOrder [][2]string
	samples  []pprofSample
}

func newPprofBuilder() *pprofBuilder {
	b := &pprofBuilder{strIndex: map[string]int64{}, mappings: map[string]uint64{}, locs: map[[2]string]uint64{}}
	b.str("") // string_table[0] must be ""
	return b
}

func (b *pprofBuilder) str(s string) int64 {
	if i, ok := b.strIndex[s]; ok {
		return i
	}
	i := int64(len(b.strings))
	b.strings = append(b.strings, s)
	b.strIndex[s] = i
	return i
}

func (b *pprofBuilder) location(sym, dso string) uint64 {
	k := [2]string{sym, dso}
	if id, ok := b.locs[k]; ok {
		return id
	}
	if _, ok := b.mappings[dso]; !ok {
		b.mappings[dso] = uint64(len(b.mapOrder) + 1)
		b.mapOrder = append(b.mapOrder, dso)
	}
	id := uint64(len(b.locOrder) + 1)
	b.locs[k] = id
	b.locOrder = append(b.locOrder, k)
	return id
}

// marshal encodes the profile.proto message (github.com/google/pprof
// proto/profile.proto) by hand: the generator has no pprof dependency.
func (b *pprofBuilder) marshal() []byte {
	valueType := func(typ, unit string) []byte {
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(b.str(typ)))
		m = protowire.AppendTag(m, 2, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(b.str(unit)))
		return m
	}
	var out []byte
	for _, vt := range [][2]string{{"samples", "count"}, {"cpu", "nanoseconds"}} {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, valueType(vt[0], vt[1]))
	}
	var total int64
	for _, s := range b.samples {
		var m, ids, vals []byte
		for _, l := range s.locs {
			ids = protowire.AppendVarint(ids, l)
		}
		vals = protowire.AppendVarint(vals, 1)
		vals = protowire.AppendVarint(vals, uint64(s.period))
		m = protowire.AppendTag(m, 1, protowire.BytesType)
		m = protowire.AppendBytes(m, ids)
		m = protowire.AppendTag(m, 2, protowire.BytesType)
		m = protowire.AppendBytes(m, vals)
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendBytes(out, m)
		total += s.period
	}
	for i, dso := range b.mapOrder {
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(i+1))
		m = protowire.AppendTag(m, 5, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(b.str(dso)))
		m = protowire.AppendTag(m, 7, protowire.VarintType) // has_functions
		m = protowire.AppendVarint(m, 1)
		out = protowire.AppendTag(out, 3, protowire.BytesType)
		out = protowire.AppendBytes(out, m)
	}
	for i, k := range b.locOrder {
		id := uint64(i + 1)
		var line, m []byte
		line = protowire.AppendTag(line, 1, protowire.VarintType)
		line = protowire.AppendVarint(line, id)
		m = protowire.AppendTag(m, 1, protowire.VarintType)
		m = protowire.AppendVarint(m, id)
		m = protowire.AppendTag(m, 2, protowire.VarintType)
		m = protowire.AppendVarint(m, b.mappings[k[1]])
		m = protowire.AppendTag(m, 4, protowire.BytesType)
		m = protowire.AppendBytes(m, line)
		out = protowire.AppendTag(out, 4, protowire.BytesType)
		out = protowire.AppendBytes(out, m)
	}
	for i, k := range b.locOrder {
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(i+1))
		m = protowire.AppendTag(m, 2, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(b.str(k[0])))
		m = protowire.AppendTag(m, 3, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(b.str(k[0])))
		m = protowire.AppendTag(m, 4, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(b.str(k[1])))
		out = protowire.AppendTag(out, 5, protowire.BytesType)
		out = protowire.AppendBytes(out, m)
	}
	// period_type and period must be encoded before the string table is
	// written, as they add strings.
	pt := valueType("cpu", "nanoseconds")
	var period int64
	if len(b.samples) > 0 {
		period = total / int64(len(b.samples))
	}
	for _, s := range b.strings {
		out = protowire.AppendTag(out, 6, protowire.BytesType)
		out = protowire.AppendString(out, s)
	}
	out = protowire.AppendTag(out, 11, protowire.BytesType)
	out = protowire.AppendBytes(out, pt)
	out = protowire.AppendTag(out, 12, protowire.VarintType)
	out = protowire.AppendVarint(out, uint64(period))
	return out
}

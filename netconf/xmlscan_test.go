package netconf

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// xmlStats is what Limits bound, as encoding/xml sees a document: counted
// on the tokens of its RawToken, up to its first error.
type xmlStats struct {
	depth, elements       int // deepest nesting, start tags
	attrs, docAttrs       int // most attributes of one start tag, attributes in all
	tagBytes, nameBytes   int // longest start tag ('<' to '>'), longest name
	directive, tokenError bool
}

func measureXML(data []byte) xmlStats {
	var s xmlStats
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	name := func(n xml.Name) {
		l := len(n.Local)
		if n.Space != "" {
			l += len(n.Space) + 1 // RawToken splits prefix:local at the colon
		}
		s.nameBytes = max(s.nameBytes, l)
	}
	depth := 0
	for {
		before := d.InputOffset()
		tok, err := d.RawToken()
		if err != nil {
			s.tokenError = err != io.EOF
			return s
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			s.depth = max(s.depth, depth)
			s.elements++
			s.attrs = max(s.attrs, len(t.Attr))
			s.docAttrs += len(t.Attr)
			if n := int(d.InputOffset() - before); n > 0 { // 0: the end half of an empty-element tag
				s.tagBytes = max(s.tagBytes, n)
			}
			name(t.Name)
			for _, a := range t.Attr {
				name(a.Name)
			}
		case xml.EndElement:
			depth--
			name(t.Name)
		case xml.ProcInst:
			s.nameBytes = max(s.nameBytes, len(t.Target))
		case xml.Directive:
			s.directive = true
		}
	}
}

func (s xmlStats) within(l Limits) bool {
	return s.depth <= l.MaxDepth && s.elements <= l.MaxElements && s.attrs <= l.MaxAttributes &&
		s.docAttrs <= l.MaxDocumentAttributes && s.tagBytes <= l.MaxStartTagBytes && s.nameBytes <= l.MaxNameBytes
}

// exact returns the tightest limits the document meets.
func (s xmlStats) exact() Limits {
	return Limits{MaxDepth: max(s.depth, 1), MaxElements: max(s.elements, 1), MaxAttributes: max(s.attrs, 1),
		MaxDocumentAttributes: max(s.docAttrs, 1), MaxStartTagBytes: max(s.tagBytes, 1), MaxNameBytes: max(s.nameBytes, 1)}
}

// xmlAccepts reports whether encoding/xml, strict as ParseElement uses it,
// reads the whole document without error and finds no directive (which
// ParseElement refuses).
func xmlAccepts(data []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if _, ok := tok.(xml.Directive); ok {
			return false
		}
	}
}

// checkScan checks scanXML on one document against encoding/xml:
//   - accepted ⇒ every start tag, name and depth encoding/xml reads is
//     within the limits (the scan lets nothing through that it did not count);
//   - encoding/xml accepts it and it is within the limits ⇒ accepted;
//   - encoding/xml accepts it ⇒ an error wraps ErrXMLLimit (never a
//     syntax error).
func checkScan(t *testing.T, data []byte, lims ...Limits) {
	t.Helper()
	s, accepts := measureXML(data), xmlAccepts(data)
	for _, lim := range lims {
		checkScanWith(t, data, s, accepts, lim)
	}
}

func checkScanWith(t *testing.T, data []byte, s xmlStats, accepts bool, lim Limits) {
	t.Helper()
	lim = lim.withDefaults()
	err := scanXML(data, lim)
	if err == nil && !s.within(lim) {
		t.Fatalf("scan accepted a document beyond the limits\nlimits %+v\nstats %+v\n%q", lim, s, trunc(data))
	}
	if err != nil && !strings.HasPrefix(err.Error(), "xml: ") {
		t.Fatalf("error without xml prefix: %v", err)
	}
	if accepts {
		if s.within(lim) && err != nil {
			t.Fatalf("scan refused a document encoding/xml accepts within the limits: %v\nlimits %+v\nstats %+v\n%q", err, lim, s, trunc(data))
		}
		if err != nil && !errors.Is(err, ErrXMLLimit) {
			t.Fatalf("scan refused a document encoding/xml accepts with a syntax error: %v\n%q", err, trunc(data))
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 300 {
		return append(b[:300:300], "..."...)
	}
	return b
}

// tightLimits are small enough for short fuzz inputs to cross each one.
var tightLimits = Limits{MaxDepth: 4, MaxElements: 12, MaxAttributes: 3, MaxDocumentAttributes: 6, MaxStartTagBytes: 48, MaxNameBytes: 8}

// FuzzScanXML: checkScan under the default limits and under tight ones.
// Seeds hold what the scan must read right (quotes, comments, CDATA,
// processing instructions holding '<' and '>') and inputs it must refuse.
func FuzzScanXML(f *testing.F) {
	for _, seed := range scanSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScan(t, data, Limits{}, tightLimits)
		_, err := ParseElement(data, tightLimits)
		if err == nil && !measureXML(data).within(tightLimits.withDefaults()) {
			t.Fatalf("ParseElement accepted a document beyond the limits: %q", data)
		}
	})
}

var scanSeeds = []string{
	`<rpc message-id="101" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`,
	`<?xml version="1.0" encoding="UTF-8"?><nc:rpc xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="urn:uuid:5a3b"><nc:get-config><nc:source><nc:running/></nc:source></nc:get-config></nc:rpc>`,
	`<a x='>"' y=">'"><!-- <b x="1"> --><![CDATA[<c d="e">]]]]><?p <f> ?></a>`,
	`<a x="1"y="2"/>`,
	"<a\n\tx\n=\n'1'\r\n/>",
	`<a><!-- a - b --><!----></a>`,
	`<a><![CDATA[]]></a>`,
	`<a x="a&amp;&lt;&#60;&#x3c;b"/>`,
	`<é名 ü:x="1" xmlns:ü="urn:u"/>`,
	`<a x="<"/>`,
	`<a><!-- a -- b --></a>`,
	`<a><!-></a>`,
	`<a><![CDAT[x]]></a>`,
	`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`,
	`<a x=1/>`,
	`<a x/>`,
	`<a/ >`,
	`</a>`,
	`<a></a b>`,
	`<a><?`,
	`<a x="1`,
	`<`,
	`<a b="" c="" d="" e=""/>`,
	`<a><b><c><d><e/></d></c></b></a>`,
	`<abcdefghij/>`,
	`<a abcdefghij=""/>`,
	`<a><?abcdefghij x?></a>`,
	`<a></abcdefghij>`,
	`<a x="` + strings.Repeat("y", 60) + `"/>`,
}

// TestScanXMLValid runs checkScan over valid documents at their exact
// limits, where nothing may be refused, and one below each, where the
// error must be ErrXMLLimit: hand-written NETCONF messages of the clients
// in use, the stored fuzz corpora of this package, and generated documents.
func TestScanXMLValid(t *testing.T) {
	docs := append([]string(nil), netconfSamples...)
	corpus, err := filepath.Glob(filepath.Join("testdata", "fuzz", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range corpus {
		for _, in := range readCorpusFile(t, file) {
			checkScan(t, in, Limits{}, tightLimits)
			if xmlAccepts(in) {
				docs = append(docs, string(in))
			}
		}
	}
	r := rand.New(rand.NewPCG(12, 2026))
	for range 1000 {
		var b bytes.Buffer
		if r.IntN(4) == 0 {
			b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
		}
		genElement(r, &b, 0)
		docs = append(docs, b.String())
	}
	for _, doc := range docs {
		data := []byte(doc)
		if !xmlAccepts(data) {
			t.Fatalf("sample not accepted by encoding/xml: %q", trunc(data))
		}
		s := measureXML(data)
		exact := s.exact()
		if err := scanXML(data, exact); err != nil {
			t.Fatalf("refused at its exact limits %+v: %v\n%q", exact, err, trunc(data))
		}
		checkScanWith(t, data, s, true, Limits{})
		checkScanWith(t, data, s, true, tightLimits)
		for i, lower := range []func(*Limits) *int{
			func(l *Limits) *int { return &l.MaxDepth }, func(l *Limits) *int { return &l.MaxElements },
			func(l *Limits) *int { return &l.MaxAttributes }, func(l *Limits) *int { return &l.MaxDocumentAttributes },
			func(l *Limits) *int { return &l.MaxStartTagBytes }, func(l *Limits) *int { return &l.MaxNameBytes },
		} {
			l := exact
			if p := lower(&l); *p > 1 {
				*p--
				if err := scanXML(data, l); !errors.Is(err, ErrXMLLimit) {
					t.Fatalf("limit %d lowered to %+v: %v\n%q", i, l, err, trunc(data))
				}
			}
		}
	}
	t.Logf("%d documents, %d corpus files", len(docs), len(corpus))
}

// netconfSamples are requests as clients send them: ncclient (prefixed
// base namespace, urn:uuid message-ids), yangcli, Ansible (through
// ncclient), go-netconf, and an edit-config with operation attributes.
var netconfSamples = []string{
	`<?xml version="1.0" encoding="UTF-8"?><nc:rpc xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="urn:uuid:0a7a9e4c-3a1b-4ad5-9b3e-6f2e7a1c9d11"><nc:get><nc:filter type="subtree"><netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><schemas/></netconf-state></nc:filter></nc:get></nc:rpc>`,
	`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<rpc message-id="2" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">` + "\n  " + `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring">` + "\n    <identifier>myno-demo</identifier>\n  </get-schema>\n</rpc>",
	`<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="101"><create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><stream>NETCONF</stream></create-subscription></rpc>`,
	`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:ex="urn:example" ex:user-id="fred" ex:transaction-id="x'1">"'"><edit-config><target><running/></target><default-operation>none</default-operation><config xmlns:xc="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:yang="urn:ietf:params:xml:ns:yang:1"><top xmlns="urn:example:config"><interface xc:operation="replace" yang:insert="after" yang:key="[name='eth0']"><name>eth1</name><mtu>1500</mtu></interface><!-- <interface> --><description><![CDATA[a <b> & c]]></description></top></config></edit-config></rpc>`,
	`<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability><capability>urn:ietf:params:netconf:base:1.1</capability><capability>urn:ietf:params:netconf:capability:notification:1.0</capability></capabilities></hello>`,
	`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get><filter type="xpath" select="/if:interfaces/if:interface[if:name='eth0' and if:mtu &gt; 1400]" xmlns:if="urn:ietf:params:xml:ns:yang:ietf-interfaces"/></get></rpc>`,
	"<rpc message-id='7'\txmlns='urn:ietf:params:xml:ns:netconf:base:1.0'\r\n><close-session/></rpc>\n",
}

// genElement writes a random well-formed element: names with and without
// prefixes and non-ASCII letters, attributes in either quote holding '>',
// the other quote and references, white space around '=', comments, CDATA
// sections and text holding markup-like characters.
func genElement(r *rand.Rand, b *bytes.Buffer, depth int) {
	names := []string{"a", "rpc", "get-config", "x.y", "_z", "é", "名前", "interface", "a-very-long-element-name-" + strings.Repeat("n", r.IntN(100))}
	name := names[r.IntN(len(names))]
	if r.IntN(3) == 0 {
		name = "p" + strconv.Itoa(r.IntN(3)) + ":" + name
	}
	space := func() string { return []string{"", " ", "\n\t", "\r\n  "}[r.IntN(4)] }
	b.WriteString("<" + name)
	n := r.IntN(6)
	if r.IntN(50) == 0 {
		n = 300
	}
	for i := range n {
		b.WriteString(" " + space())
		switch r.IntN(4) {
		case 0:
			fmt.Fprintf(b, "xmlns:p%d", i)
		case 1:
			fmt.Fprintf(b, "q:at%d", i)
		default:
			fmt.Fprintf(b, "at%d", i)
		}
		b.WriteString(space() + "=" + space())
		values := []string{"", "1", "a > b", "it's", `say "hi"`, "&amp;&lt;&gt;&#60;&#x3E;", "urn:ietf:params:xml:ns:netconf:base:1.0", "]]>", strings.Repeat("v", r.IntN(3000))}
		v := values[r.IntN(len(values))]
		q := `"`
		if strings.Contains(v, `"`) || (!strings.Contains(v, "'") && r.IntN(2) == 0) {
			q = "'"
		}
		b.WriteString(q + v + q)
	}
	b.WriteString(space())
	if r.IntN(4) == 0 || depth > 8 {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	for range r.IntN(5) {
		switch r.IntN(6) {
		case 0:
			b.WriteString("<!-- <not-a-tag x='1'> - > -" + " -->")
		case 1:
			b.WriteString(`<![CDATA[<x y="z"> ]] > &amp; ]]>`)
		case 2:
			b.WriteString(" text > with ' and \" &amp; &#x41; ]] ")
		default:
			genElement(r, b, depth+1)
		}
	}
	b.WriteString("</" + name + space() + ">")
}

// readCorpusFile returns the []byte values of a "go test fuzz v1" file.
func readCorpusFile(t *testing.T, file string) [][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "[]byte("); ok {
			s, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			out = append(out, []byte(s))
		}
	}
	return out
}

// TestScanXMLRefuses: each input is refused, for a limit or as markup
// encoding/xml refuses too, and the error says which.
func TestScanXMLRefuses(t *testing.T) {
	lim := Limits{MaxDepth: 3, MaxElements: 5, MaxAttributes: 2, MaxDocumentAttributes: 4, MaxStartTagBytes: 40, MaxNameBytes: 6}
	for _, tc := range []struct {
		in, want string
		limit    bool
	}{
		{`<a x="1" y="2" z="3"/>`, "more than 2 attributes in one start tag", true},
		{`<a xmlns="u" p:x="1" y=""/>`, "more than 2 attributes in one start tag", true},
		{`<a x="1" y="2"><b x="1" y="2"><c x="1"/></b></a>`, "more than 4 attributes in the document", true},
		{`<a x="` + strings.Repeat("v", 40) + `"/>`, "start tag longer than 40 bytes", true},
		{`<a x="` + strings.Repeat("v", 40), "start tag longer than 40 bytes", true},
		{`<abcdefg/>`, "name longer than 6 bytes", true},
		{`<a abcdefg=""/>`, "name longer than 6 bytes", true},
		{`<a></abcdefg>`, "name longer than 6 bytes", true},
		{`<?abcdefg?><a/>`, "name longer than 6 bytes", true},
		{`<a><b><c><d/></c></b></a>`, "nesting deeper than 3", true},
		{`<a><b/><b/><b/><b/><b/></a>`, "more than 5 elements", true},
		{`<a x="<"/>`, "< inside an attribute value", false},
		{`<a x=1/>`, "not quoted", false},
		{`<a x/>`, "attribute without =", false},
		{`<a/ >`, "/ not followed by >", false},
		{`<a><!-- -- --></a>`, `"--" inside a comment`, false},
		{`<a><!-- </a>`, "comment not closed", false},
		{`<a><![CDATA[ </a>`, "CDATA section not closed", false},
		{`<a><![CDAT[x]]></a>`, "neither a comment nor a CDATA section", false},
		{`<!DOCTYPE a><a/>`, "DTDs and directives are not allowed", false},
		{`<a></a></a>`, "end tag without a start tag", false},
		{`<a></a b>`, "end tag not closed", false},
		{`<a><?pi `, "processing instruction not closed", false},
		{`<a x="1"`, "ends inside a start tag", false},
		{`<a><`, "ends after <", false},
		{`<a>< b/></a>`, "no name after <", false},
	} {
		err := scanXML([]byte(tc.in), lim.withDefaults())
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrXMLLimit) != tc.limit {
			t.Errorf("%q: %v, want %q (limit %v)", tc.in, err, tc.want, tc.limit)
		}
		if _, perr := parseTree([]byte(tc.in), Limits{}.withDefaults()); !tc.limit && perr == nil && !strings.HasPrefix(tc.in, "<!DOCTYPE") {
			t.Errorf("%q: encoding/xml accepts what the scan calls a syntax error", tc.in)
		}
	}
}

// The scan allocates nothing for a document it accepts, and only its
// error for one it refuses, whatever the size.
func TestScanXMLAllocatesNothing(t *testing.T) {
	lim := Limits{}.withDefaults()
	for _, s := range netconfSamples {
		doc := []byte(s)
		if n := fewestAllocs(10, func() { _ = scanXML(doc, lim) }); n != 0 {
			t.Errorf("%v allocations scanning %.60q", n, doc)
		}
	}
	small, big := attackAttributes(300), attackAttributes(200_000)
	a := fewestAllocs(5, func() { _ = scanXML(small, lim) })
	b := fewestAllocs(5, func() { _ = scanXML(big, lim) })
	if a > 10 || b > 10 {
		t.Errorf("refusing: %v allocations for %d bytes, %v for %d bytes", a, len(small), b, len(big))
	}
}

// fewestAllocs is the fewest allocations per run of f in three
// testing.AllocsPerRun measurements. AllocsPerRun counts the process's
// allocations, so goroutines left by earlier tests of the package (a
// session still ending) can add some to one measurement (CI, under
// -race, once counted 11 where 10 is the bound); noise only adds, so the
// fewest is f's own.
func fewestAllocs(runs int, f func()) float64 {
	n := testing.AllocsPerRun(runs, f)
	for range 2 {
		n = min(n, testing.AllocsPerRun(runs, f))
	}
	return n
}

// attackAttributes is an <rpc> with n empty attributes on one element
// (issue 12: 1.4 million in 15.7 MB).
func attackAttributes(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"`)
	for i := range n {
		b.WriteString(" a")
		b.WriteString(strconv.Itoa(i))
		b.WriteString(`=""`)
	}
	b.WriteString("><get/></rpc>")
	return b.Bytes()
}

// The message is refused by ParseElement before encoding/xml
// starts, whatever its size; the <rpc> attribute byte cap still holds.
func TestParseElementRefusesManyAttributes(t *testing.T) {
	_, err := ParseElement(attackAttributes(300), Limits{})
	if !errors.Is(err, ErrXMLLimit) || !strings.Contains(err.Error(), "more than 256 attributes") {
		t.Fatalf("got %v", err)
	}
	// The hello, decoded before any rpc, goes through the same scan.
	hello := bytes.Replace(attackAttributes(300), []byte("<rpc "), []byte("<hello "), 1)
	if _, err := decodeHello(hello, Limits{}); !errors.Is(err, ErrXMLLimit) {
		t.Fatalf("hello with 300 attributes: %v", err)
	}
	long := []byte(`<rpc message-id="1" a="` + strings.Repeat("x", 5000) + `" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`)
	var re *RPCError
	if _, err := decodeRPC(long, Limits{}); !errors.As(err, &re) || re.Tag != TagBadAttribute {
		t.Fatalf("5000-byte <rpc> attribute: %v", err)
	}
}

// An encoding/xml error quoting a whole entity reference of the input is
// cut before it goes back to the peer.
func TestParseElementErrorIsShort(t *testing.T) {
	_, err := ParseElement([]byte(`<a>&`+strings.Repeat("n", 100_000)+`;</a>`), Limits{})
	if err == nil || len(err.Error()) > maxErrorText+16 {
		t.Fatalf("error of %d bytes", len(fmt.Sprint(err)))
	}
}

// BenchmarkParseElement: a typical rpc with and without the scan.
func BenchmarkParseElement(b *testing.B) {
	msg := []byte(netconfSamples[3])
	lim := Limits{}.withDefaults()
	b.Run("scan+parse", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseElement(msg, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseTree(msg, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if err := scanXML(msg, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
}

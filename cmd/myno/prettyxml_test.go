package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestPrettyXML(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"prefixed elements and attributes keep their prefixes",
			`<nc:rpc-reply xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:message-id="101"><nc:data><nc:ok/></nc:data></nc:rpc-reply>`,
			`<nc:rpc-reply xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:message-id="101">` + "\n" +
				`  <nc:data>` + "\n" +
				`    <nc:ok/>` + "\n" +
				`  </nc:data>` + "\n" +
				`</nc:rpc-reply>`},
		{"default namespaces on children, a prefix declared on a leaf for its value",
			`<nc:rpc-reply xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><nc:data><top xmlns="urn:a"><x>1</x><inner xmlns="urn:b"><y>2</y></inner></top>` +
				`<name xmlns="urn:c" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">ds:running</name></nc:data></nc:rpc-reply>`,
			`<nc:rpc-reply xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0">` + "\n" +
				`  <nc:data>` + "\n" +
				`    <top xmlns="urn:a">` + "\n" +
				`      <x>1</x>` + "\n" +
				`      <inner xmlns="urn:b">` + "\n" +
				`        <y>2</y>` + "\n" +
				`      </inner>` + "\n" +
				`    </top>` + "\n" +
				`    <name xmlns="urn:c" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">ds:running</name>` + "\n" +
				`  </nc:data>` + "\n" +
				`</nc:rpc-reply>`},
		{"attributes with quotes, ampersands, angle brackets and whitespace",
			`<a t="say &quot;hi&quot; &amp; &lt;bye&gt;" q='it&apos;s "x"' w="tab&#9;nl&#10;"/>`,
			`<a t="say &#34;hi&#34; &amp; &lt;bye&gt;" q="it&#39;s &#34;x&#34;" w="tab&#x9;nl&#xA;"/>`},
		{"text and CDATA escaped, leaf text unchanged",
			`<r><a><![CDATA[x < y && "z" ]]>]]&gt;</a><b>no operation &lt;bogus&gt; in any module</b></r>`,
			"<r>\n  <a>x &lt; y &amp;&amp; \"z\" ]]&gt;</a>\n  <b>no operation &lt;bogus&gt; in any module</b>\n</r>"},
		{"empty elements",
			`<r><a></a><b/><c   /></r>`,
			"<r>\n  <a/>\n  <b/>\n  <c/>\n</r>"},
		{"whitespace in leaves is kept, between elements dropped",
			"<r>\n\t<a>  </a>\n\t<b> two\n  lines </b>\n</r>\n",
			"<r>\n  <a>  </a>\n  <b> two\n  lines </b>\n</r>"},
		{"indented input is indented anew",
			"<r>\n      <a>\n <b>1</b>\n </a>\n</r>",
			"<r>\n  <a>\n    <b>1</b>\n  </a>\n</r>"},
		{"mixed content stays on one line, as it is",
			`<r><p>Hello <b>big</b> world</p></r>`,
			"<r>\n  <p>Hello <b>big</b> world</p>\n</r>"},
		{"declaration, comments, a carriage return",
			`<?xml version="1.0" encoding="UTF-8"?><!-- c1 --><r><!--c2--><a>x&#13;y</a></r>`,
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c1 -->\n<r>\n  <!--c2-->\n  <a>x&#xD;y</a>\n</r>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := prettyXML(tc.in)
			if !ok || got != tc.want {
				t.Fatalf("prettyXML(%q) = ok %v\n%s\nwant\n%s", tc.in, ok, got, tc.want)
			}
			if again, _ := prettyXML(got); again != got {
				t.Errorf("not idempotent:\n%s", again)
			}
			if in, out := xmlMeaning(t, tc.in), xmlMeaning(t, got); in != out {
				t.Errorf("the meaning changed:\n%s\nto\n%s", in, out)
			}
		})
	}
}

// Replies that are not well-formed XML are given back unchanged.
func TestPrettyXMLMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"   ",
		"not xml",
		"<a>",
		"<a><b></a></b>",
		"<a></b>",
		"</a>",
		"<a/><b/>",
		"text<a/>",
		"<a/>text",
		"<a>&nbsp;</a>",
		"<a x=1/>",
		`<a x="1" x="2"/>` + "<",
		"<a><!-- -- --></a>",
		`<?xml version="1.0" encoding="ISO-8859-1"?><a/>`,
		"<rpc-reply><data>cut off",
	} {
		if got, ok := prettyXML(in); ok || got != in {
			t.Errorf("prettyXML(%q) = %q, %v; want it unchanged, false", in, got, ok)
		}
	}
}

// FuzzPrettyXML: whatever it accepts, the indented document means the same
// (namespaces resolved, text other than whitespace between elements
// unchanged) and indenting it again changes nothing.
func FuzzPrettyXML(f *testing.F) {
	for _, s := range []string{
		`<nc:rpc-reply xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:message-id="1"><nc:data><top xmlns="urn:a"><x>1</x></top></nc:data></nc:rpc-reply>`,
		`<r><p>Hello <b>big</b> world</p><![CDATA[<&>]]><a t="&quot;&amp;"/></r>`,
		"<?xml version=\"1.0\"?>\n<!--c--><r>\n <a>  </a>\r\n</r>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := prettyXML(in)
		if !ok {
			if got != in {
				t.Fatalf("refused %q but changed it to %q", in, got)
			}
			return
		}
		if again, ok := prettyXML(got); !ok || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, got, again, ok)
		}
		if a, b := xmlMeaning(t, in), xmlMeaning(t, got); a != b {
			t.Fatalf("meaning changed: %q -> %q\n%s\n%s", in, got, a, b)
		}
	})
}

// xmlMeaning lists what a document says, as encoding/xml's namespace-aware
// Token reads it: elements by namespace and local name, attributes, text
// (whitespace-only runs left out), comments and processing instructions.
func xmlMeaning(t testing.TB, doc string) string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	var b strings.Builder
	var text []byte
	flush := func() {
		if len(bytes.TrimSpace(text)) > 0 {
			fmt.Fprintf(&b, "text %q\n", text)
		}
		text = text[:0]
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			flush()
			return b.String()
		}
		if err != nil {
			t.Fatalf("%v in %q", err, doc)
		}
		if cd, ok := tok.(xml.CharData); ok {
			text = append(text, cd...)
			continue
		}
		flush()
		switch tok := tok.(type) {
		case xml.StartElement:
			fmt.Fprintf(&b, "start {%s}%s", tok.Name.Space, tok.Name.Local)
			for _, a := range tok.Attr {
				fmt.Fprintf(&b, " {%s}%s=%q", a.Name.Space, a.Name.Local, a.Value)
			}
			b.WriteByte('\n')
		case xml.EndElement:
			fmt.Fprintf(&b, "end {%s}%s\n", tok.Name.Space, tok.Name.Local)
		case xml.Comment:
			fmt.Fprintf(&b, "comment %q\n", tok)
		case xml.ProcInst:
			fmt.Fprintf(&b, "procinst %q %q\n", tok.Target, tok.Inst)
		case xml.Directive:
			fmt.Fprintf(&b, "directive %q\n", tok)
		}
	}
}

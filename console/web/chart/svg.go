package chart

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// svgWriter writes markup element by element. Element and attribute names
// are constants of this package; every attribute value and every text node
// goes through escape, so a label cannot open an element or leave its
// attribute, whatever it holds.
type svgWriter struct {
	b *bytes.Buffer
}

func newWriter(b *bytes.Buffer) *svgWriter { return &svgWriter{b: b} }

// open writes <name k="v" ...>. attrs holds name/value pairs.
func (w *svgWriter) open(name string, attrs ...string) {
	w.start(name, attrs)
	w.b.WriteByte('>')
}

// leaf writes a childless element: <name k="v" .../>. In HTML the foreign
// (SVG) elements accept the self-closing form; it also keeps the output
// well-formed XML, which the tests check.
func (w *svgWriter) leaf(name string, attrs ...string) {
	w.start(name, attrs)
	w.b.WriteString("/>")
}

// elem writes <name attrs>text</name>.
func (w *svgWriter) elem(name, text string, attrs ...string) {
	w.open(name, attrs...)
	w.text(text)
	w.close(name)
}

func (w *svgWriter) close(name string) {
	w.b.WriteString("</")
	w.b.WriteString(name)
	w.b.WriteByte('>')
}

func (w *svgWriter) text(s string) { escape(w.b, s) }

// nl keeps golden files readable; browsers ignore the whitespace.
func (w *svgWriter) nl() { w.b.WriteByte('\n') }

func (w *svgWriter) start(name string, attrs []string) {
	w.b.WriteByte('<')
	w.b.WriteString(name)
	for i := 0; i+1 < len(attrs); i += 2 {
		w.b.WriteByte(' ')
		w.b.WriteString(attrs[i])
		w.b.WriteString(`="`)
		escape(w.b, attrs[i+1])
		w.b.WriteByte('"')
	}
}

// escape writes s with the five markup characters escaped, invalid UTF-8
// replaced, and the control characters XML forbids dropped.
func escape(b *bytes.Buffer, s string) {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		case '\t', '\n', '\r':
			b.WriteByte(' ')
		default:
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff {
				continue
			}
			b.WriteRune(r)
		}
	}
}

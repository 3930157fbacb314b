package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/net/html"
)

// CheckPage lints rendered HTML for the rules a console page must keep, so
// a page's unit test catches in milliseconds what the browser test would:
// every POST form carries the CSRF field csrfField; no inline <script> or
// <style>, no style attribute and no on* handler (the CSP blocks them, so
// they would silently not work); no javascript: URL; every form control has
// a label (a <label for>, an enclosing <label>, aria-label or
// aria-labelledby); and there is exactly one <main> and one <h1>.
func CheckPage(page []byte, csrfField string) error {
	var errs []error
	z := html.NewTokenizer(bytes.NewReader(page))
	var inPost bool
	var postHasToken bool
	var formLine string
	labelFor := map[string]bool{}
	type control struct{ id, desc string }
	var controls []control
	labelDepth := 0
	mains, h1s := 0, 0
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if !errors.Is(z.Err(), io.EOF) {
				errs = append(errs, z.Err())
			}
			break
		}
		tok := z.Token()
		attr := func(k string) (string, bool) {
			for _, a := range tok.Attr {
				if a.Key == k {
					return a.Val, true
				}
			}
			return "", false
		}
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			for _, a := range tok.Attr {
				switch {
				case a.Key == "style":
					errs = append(errs, fmt.Errorf("<%s style=%q>: inline styles are blocked by the CSP; use a class", tok.Data, a.Val))
				case strings.HasPrefix(a.Key, "on"):
					errs = append(errs, fmt.Errorf("<%s %s=…>: inline handlers are blocked by the CSP; use console.js", tok.Data, a.Key))
				case (a.Key == "href" || a.Key == "src" || a.Key == "action" || a.Key == "formaction") &&
					strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:"):
					errs = append(errs, fmt.Errorf("<%s %s=%q>: javascript: URLs are blocked by the CSP", tok.Data, a.Key, a.Val))
				}
			}
			switch tok.Data {
			case "main":
				mains++
			case "h1":
				h1s++
			case "script":
				if _, ok := attr("src"); !ok {
					errs = append(errs, errors.New("inline <script>: blocked by the CSP; put code in console.js"))
				}
			case "style":
				errs = append(errs, errors.New("<style> element: blocked by the CSP; put rules in console.css"))
			case "form":
				m, _ := attr("method")
				if inPost && !postHasToken {
					errs = append(errs, fmt.Errorf("POST form %s has no %s field", formLine, csrfField))
				}
				inPost = strings.EqualFold(m, "post")
				postHasToken = false
				formLine = tok.String()
			case "input":
				n, _ := attr("name")
				typ, _ := attr("type")
				if inPost && n == csrfField && typ == "hidden" {
					if v, _ := attr("value"); v != "" {
						postHasToken = true
					}
				}
				if typ == "hidden" || typ == "submit" || typ == "button" || typ == "reset" || typ == "image" {
					break
				}
				fallthrough
			case "select", "textarea":
				_, al := attr("aria-label")
				_, alb := attr("aria-labelledby")
				if al || alb || labelDepth > 0 {
					break
				}
				id, _ := attr("id")
				controls = append(controls, control{id: id, desc: tok.String()})
			case "label":
				if f, ok := attr("for"); ok {
					labelFor[f] = true
				}
				if tt == html.StartTagToken {
					labelDepth++
				}
			}
		case html.EndTagToken:
			switch tok.Data {
			case "form":
				if inPost && !postHasToken {
					errs = append(errs, fmt.Errorf("POST form %s has no %s field with a token", formLine, csrfField))
				}
				inPost = false
			case "label":
				if labelDepth > 0 {
					labelDepth--
				}
			}
		}
	}
	for _, c := range controls {
		if c.id == "" || !labelFor[c.id] {
			errs = append(errs, fmt.Errorf("form control %s has no label", c.desc))
		}
	}
	if mains != 1 {
		errs = append(errs, fmt.Errorf("page has %d <main> elements, want 1", mains))
	}
	if h1s != 1 {
		errs = append(errs, fmt.Errorf("page has %d <h1> headings, want 1", h1s))
	}
	return errors.Join(errs...)
}

package web

import "github.com/chromedp/chromedp"

func chromedpKey(k string) chromedp.Action {
	if k == "Escape" {
		return chromedp.KeyEvent("\x1b")
	}
	return chromedp.KeyEvent(k)
}

//go:build linux

package uie2e

import "github.com/chromedp/chromedp"

func chromedpSetValue(sel, v string) chromedp.Action {
	return chromedp.SetValue(sel, v, chromedp.ByQuery)
}

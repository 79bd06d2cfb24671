package dashboard

import (
	"bytes"
	"embed"
	"errors"
	"strings"
	"sync"
)

// The page, its script and style, and the vendored chart library (see
// assets/README.md), all built into the binary.
//
//go:embed web/page.html web/app.js web/app.css assets/uPlot.iife.min.js assets/uPlot.min.css assets/LICENSE
var files embed.FS

// pageCSP is the page's own Content-Security-Policy (a meta element, so
// that the report file has it too): inline script and style only, and
// network access to the page's server alone in live mode, to nothing in
// the report.
const (
	liveCSP   = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"
	reportCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
)

func asset(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("dashboard: missing embedded file " + name) // a build error, really
	}
	return string(b)
}

// renderPage fills the page template. data is JSON made safe for a
// <script> element (appendStr escapes '<'); title is plain text.
func renderPage(mode, title string, data []byte) ([]byte, error) {
	js, lib := asset("web/app.js"), asset("assets/uPlot.iife.min.js")
	for _, s := range []string{js, lib} {
		if strings.Contains(strings.ToLower(s), "</script") {
			return nil, errors.New("dashboard: a script contains </script")
		}
	}
	if bytes.Contains(bytes.ToLower(data), []byte("</script")) {
		return nil, errors.New("dashboard: the data contains </script")
	}
	csp := liveCSP
	if mode == "report" {
		csp = reportCSP
	}
	r := strings.NewReplacer(
		"{{csp}}", csp,
		"{{title}}", htmlEscape(title),
		"{{mode}}", mode,
		"{{uplot.license}}", strings.ReplaceAll(asset("assets/LICENSE"), "--", "- -"),
		"{{uplot.css}}", asset("assets/uPlot.min.css"),
		"{{app.css}}", asset("web/app.css"),
		"{{uplot.js}}", lib,
		"{{app.js}}", js,
		"{{data}}", string(data),
	)
	var b bytes.Buffer
	b.Grow(len(lib) + len(js) + len(data) + 16<<10)
	if _, err := r.WriteString(&b, asset("web/page.html")); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

var live struct {
	once sync.Once
	page []byte
	err  error
}

// livePage is the page the Handler serves (built once).
func livePage() ([]byte, error) {
	live.once.Do(func() { live.page, live.err = renderPage("live", "Tidemark · BTC pipeline", []byte("null")) })
	return live.page, live.err
}

package deploy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// The docs point at each other a lot (the README at the measurements, the
// measurements at their own sections): every relative link in a Markdown
// file must name a file that exists and, with #anchor, a heading in it, as
// GitHub spells the anchor.
func TestDocLinksResolve(t *testing.T) {
	headings := map[string]map[string]bool{} // file → anchors
	anchorsOf := func(path string) map[string]bool {
		if a, ok := headings[path]; ok {
			return a
		}
		a := map[string]bool{}
		seen := map[string]int{}
		prose, _ := markdown(t, path)
		for _, line := range prose {
			if m := headingRE.FindStringSubmatch(line); m != nil {
				slug := githubSlug(m[1])
				if n := seen[slug]; n > 0 {
					a[slug+"-"+strconv.Itoa(n)] = true
				} else {
					a[slug] = true
				}
				seen[slug]++
			}
		}
		headings[path] = a
		return a
	}
	checked := 0
	for _, path := range markdownFiles(t) {
		rel, _ := filepath.Rel(root, path)
		prose, _ := markdown(t, path)
		for _, line := range prose {
			for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				dest := path
				if file != "" {
					dest = filepath.Join(filepath.Dir(path), file)
					if _, err := os.Stat(dest); err != nil {
						t.Errorf("%s: link %q: no such file", rel, target)
						continue
					}
				}
				if anchor != "" && strings.HasSuffix(dest, ".md") && !anchorsOf(dest)[anchor] {
					t.Errorf("%s: link %q: no heading with that anchor", rel, target)
				}
				checked++
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d links; the README alone has more", checked)
	}
}

var (
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile(`^#{1,6}\s+(.+?)\s*#*$`)
)

// markdown returns a Markdown file's lines outside fenced code blocks and
// inside them.
func markdown(t *testing.T, path string) (prose, fenced []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			in = !in
		case in:
			fenced = append(fenced, line)
		default:
			prose = append(prose, line)
		}
	}
	return prose, fenced
}

// markdownFiles lists the repository's Markdown files (not the replay's
// reports, not dependencies).
func markdownFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == ".git" || d.Name() == "out" || d.Name() == "node_modules"):
			return filepath.SkipDir
		case !d.IsDir() && strings.HasSuffix(path, ".md"):
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Every make command the docs show — in a code block or a `code span` —
// calls a target the Makefile defines.
func TestDocsCallExistingMakeTargets(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, path := range markdownFiles(t) {
		rel, _ := filepath.Rel(root, path)
		prose, fenced := markdown(t, path)
		code := fenced
		for _, line := range prose {
			for _, span := range codeSpanRE.FindAllStringSubmatch(line, -1) {
				code = append(code, span[1])
			}
		}
		for _, line := range code {
			for _, target := range makeCalls(line) {
				calls++
				if !defines(makefile, target) {
					t.Errorf("%s shows make %s, which the Makefile does not define", rel, target)
				}
			}
		}
	}
	if calls < 10 {
		t.Fatalf("found %d make commands in the docs; the README alone shows more", calls)
	}
}

var codeSpanRE = regexp.MustCompile("`([^`]+)`")

// githubSlug is the anchor GitHub gives a heading: lower case, punctuation
// dropped (but not hyphens or underscores), each space a hyphen.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

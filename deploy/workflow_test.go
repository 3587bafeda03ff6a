package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"sigs.k8s.io/yaml"
)

// Every workflow parses, every job runs somewhere and has steps, and every
// make target it calls exists in the Makefile; the CI workflow calls make
// for lint and test at least.
func TestWorkflowsCallExistingMakeTargets(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, ".github/workflows/*.yml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("workflows %v, %v; want ci.yml and fuzz.yml at least", files, err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			calls := checkWorkflow(t, b, makefile)
			if filepath.Base(file) == "ci.yml" && calls < 2 {
				t.Fatalf("the workflow calls make %d times; lint and test at least", calls)
			}
			if calls == 0 {
				t.Fatal("the workflow calls no make target")
			}
		})
	}
}

// checkWorkflow checks one workflow and returns how many times it calls make.
func checkWorkflow(t *testing.T, b, makefile []byte) (calls int) {
	t.Helper()
	var wf struct {
		On map[string]any `json:"on"`
		// YAML 1.1 reads a bare "on" key as the boolean true.
		OnAsTrue map[string]any `json:"true"`
		Jobs     map[string]struct {
			RunsOn string   `json:"runs-on"`
			Needs  []string `json:"needs"`
			Steps  []struct {
				Uses string `json:"uses"`
				Run  string `json:"run"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("does not parse: %v", err)
	}
	if len(wf.Jobs) == 0 || (wf.On == nil && wf.OnAsTrue == nil) {
		t.Fatal("no jobs or no triggers")
	}
	for name, job := range wf.Jobs {
		if job.RunsOn == "" || len(job.Steps) == 0 {
			t.Errorf("job %s has no runner or no steps", name)
		}
		for _, need := range job.Needs {
			if _, ok := wf.Jobs[need]; !ok {
				t.Errorf("job %s needs %s, which does not exist", name, need)
			}
		}
		for _, step := range job.Steps {
			for _, target := range makeCalls(step.Run) {
				calls++
				if !defines(makefile, target) {
					t.Errorf("job %s runs make %s, which the Makefile does not define", name, target)
				}
			}
		}
	}
	return calls
}

var makeCallRE = regexp.MustCompile(`\bmake\s+([a-z][a-z-]*)`)

// makeCalls returns the targets of the make commands in a shell line.
func makeCalls(sh string) []string {
	var targets []string
	for _, m := range makeCallRE.FindAllStringSubmatch(sh, -1) {
		targets = append(targets, m[1])
	}
	return targets
}

// defines reports whether the Makefile has a rule for target.
func defines(makefile []byte, target string) bool {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(makefile)
}

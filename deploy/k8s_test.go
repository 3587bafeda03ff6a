package deploy_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// rendered is one overlay, decoded into the Kubernetes API types.
type rendered struct {
	deployments  []appsv1.Deployment
	statefulSets []appsv1.StatefulSet
	services     []corev1.Service
	configMaps   map[string]corev1.ConfigMap
	secrets      map[string]corev1.Secret
	kinds        map[string]int
}

// render runs `kubectl kustomize` and decodes every object strictly: a field
// the API does not know (a typo, a wrong indentation) fails the test, as it
// would fail `kubectl apply`.
func render(t *testing.T, overlay string) rendered {
	t.Helper()
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(root, "deploy/k8s/overlays", overlay)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", overlay, err, out)
	}
	r := rendered{configMaps: map[string]corev1.ConfigMap{}, secrets: map[string]corev1.Secret{}, kinds: map[string]int{}}
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		strict := func(v any) {
			if err := yaml.UnmarshalStrict(doc, v); err != nil {
				t.Errorf("%s: %v\n%s", meta.Kind, err, doc)
			}
		}
		r.kinds[meta.Kind]++
		switch meta.Kind {
		case "Deployment":
			var d appsv1.Deployment
			strict(&d)
			r.deployments = append(r.deployments, d)
		case "StatefulSet":
			var s appsv1.StatefulSet
			strict(&s)
			r.statefulSets = append(r.statefulSets, s)
		case "Service":
			var s corev1.Service
			strict(&s)
			r.services = append(r.services, s)
		case "ConfigMap":
			var c corev1.ConfigMap
			strict(&c)
			r.configMaps[c.Name] = c
		case "Secret":
			var s corev1.Secret
			strict(&s)
			r.secrets[s.Name] = s
		case "Namespace":
			strict(&corev1.Namespace{})
		case "HorizontalPodAutoscaler":
			strict(&autoscalingv2.HorizontalPodAutoscaler{})
		case "PodDisruptionBudget":
			strict(&policyv1.PodDisruptionBudget{})
		case "NetworkPolicy":
			strict(&networkingv1.NetworkPolicy{})
		case "Ingress":
			strict(&networkingv1.Ingress{})
		default:
			t.Errorf("unexpected kind %q", meta.Kind)
		}
	}
	return r
}

type workload struct {
	name string
	spec corev1.PodSpec
	app  bool
}

func (r rendered) workloads() []workload {
	var w []workload
	for _, d := range r.deployments {
		w = append(w, workload{d.Name, d.Spec.Template.Spec, true})
	}
	for _, s := range r.statefulSets {
		w = append(w, workload{s.Name, s.Spec.Template.Spec, false})
	}
	return w
}

func TestManifestsRenderAndDecodeStrictly(t *testing.T) {
	for _, overlay := range []string{"naive", "resilient"} {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			for kind, want := range map[string]int{"Deployment": 3, "StatefulSet": 3, "HorizontalPodAutoscaler": 3,
				"PodDisruptionBudget": 3, "NetworkPolicy": 3, "Ingress": 1, "Namespace": 1} {
				if r.kinds[kind] != want {
					t.Errorf("%d %s, want %d", r.kinds[kind], kind, want)
				}
			}
			var config corev1.ConfigMap
			for name, c := range r.configMaps {
				if strings.HasPrefix(name, "stampede-config") {
					config = c
				}
			}
			if config.Data["FIXES"] != overlay {
				t.Errorf("FIXES=%q in the %s overlay", config.Data["FIXES"], overlay)
			}
			// Every reference resolves to a rendered object (with its hash suffix).
			for _, w := range r.workloads() {
				for _, c := range w.spec.Containers {
					for _, e := range c.Env {
						if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
							s, ok := r.secrets[ref.SecretKeyRef.Name]
							if _, has := s.Data[ref.SecretKeyRef.Key]; !ok || !has {
								t.Errorf("%s: env %s refers to secret %s key %s, not rendered", w.name, e.Name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
							}
						}
					}
					for _, ef := range c.EnvFrom {
						if ef.ConfigMapRef != nil {
							if _, ok := r.configMaps[ef.ConfigMapRef.Name]; !ok {
								t.Errorf("%s: envFrom config map %s not rendered", w.name, ef.ConfigMapRef.Name)
							}
						}
					}
				}
			}
			for _, s := range r.services {
				found := false
				for _, w := range r.workloads() {
					if w.name == s.Spec.Selector["app.kubernetes.io/name"] {
						found = true
					}
				}
				if !found {
					t.Errorf("service %s selects no workload", s.Name)
				}
			}
		})
	}
}

// The policy of every container: resources, probes, non-root, a read-only
// root filesystem, no privilege escalation; and for the services, liveness
// that never touches a dependency (fix: probes), a start-up probe covering
// migrations, and a shutdown budget that fits the drain.
func TestEveryContainerFollowsThePolicy(t *testing.T) {
	r := render(t, "resilient")
	for _, w := range r.workloads() {
		for _, c := range w.spec.Containers {
			where := fmt.Sprintf("%s/%s", w.name, c.Name)
			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[res]; !ok {
					t.Errorf("%s: no %s request", where, res)
				}
				if _, ok := c.Resources.Limits[res]; !ok {
					t.Errorf("%s: no %s limit", where, res)
				}
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s: readiness and liveness probes are required", where)
			}
			nonRoot := w.spec.SecurityContext != nil && w.spec.SecurityContext.RunAsNonRoot != nil && *w.spec.SecurityContext.RunAsNonRoot
			sc := c.SecurityContext
			if sc != nil && sc.RunAsNonRoot != nil {
				nonRoot = *sc.RunAsNonRoot
			}
			if !nonRoot {
				t.Errorf("%s: must run as non-root", where)
			}
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: the root filesystem must be read-only", where)
			}
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: privilege escalation must be off", where)
			}
			if !w.app {
				continue
			}
			if c.StartupProbe == nil {
				t.Errorf("%s: a start-up probe must cover migrations", where)
			}
			if lp := c.LivenessProbe; lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/livez" {
				t.Errorf("%s: liveness must ask /livez, which never touches a dependency; got %+v", where, lp)
			}
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
				t.Errorf("%s: a preStop pause is required", where)
				continue
			}
			// preStop + readiness drain (1 s) + SHUTDOWN_GRACE (10 s) must fit.
			need := c.Lifecycle.PreStop.Sleep.Seconds + 1 + 10
			if g := w.spec.TerminationGracePeriodSeconds; g == nil || *g < need {
				t.Errorf("%s: terminationGracePeriodSeconds %v, need at least %d", where, g, need)
			}
		}
	}
}

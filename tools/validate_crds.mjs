// Validates custom resources against their CRD schemas, through the npm @kubernetes-models
// packages (prometheus-operator, argo-rollouts, argo-cd, flux-cd): manifests as a JSON array on
// stdin; exits 1 naming every object that does not validate. Called by tests/infra
// (test_infra_kubernetes.py, test_infra_flavours.py, test_gitops_examples.py).
import { PodMonitor, PrometheusRule, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { AnalysisTemplate, Rollout } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";
import { Application } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";
import { Kustomization } from "@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1";
import { GitRepository } from "@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1";

// Argo CD's Application and Argo Rollouts' kinds share argoproj.io/v1alpha1.
const MODELS = {
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "argoproj.io/v1alpha1/Rollout": Rollout,
  "argoproj.io/v1alpha1/AnalysisTemplate": AnalysisTemplate,
  "argoproj.io/v1alpha1/Application": Application,
  "kustomize.toolkit.fluxcd.io/v1/Kustomization": Kustomization,
  "source.toolkit.fluxcd.io/v1/GitRepository": GitRepository,
};

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const manifests = JSON.parse(Buffer.concat(chunks).toString("utf8"));
let failed = 0;
for (const manifest of manifests) {
  const Model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
  const where = `${manifest.apiVersion}/${manifest.kind}/${manifest.metadata?.name ?? "?"}`;
  if (!Model) {
    console.error(`${where}: not a kind this validator knows`);
    failed += 1;
    continue;
  }
  try {
    new Model(manifest).validate();
  } catch (error) {
    console.error(`${where}: ${error.message ?? error}`);
    failed += 1;
  }
}
process.exit(failed ? 1 : 0);

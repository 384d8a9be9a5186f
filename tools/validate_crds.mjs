// Validates Prometheus Operator objects against their CRD schemas (npm
// @kubernetes-models/prometheus-operator): manifests as a JSON array on stdin; exits 1 naming
// the first object that does not validate. Called by tests/infra (test_infra_kubernetes.py).
import { PodMonitor, PrometheusRule, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const MODELS = { PodMonitor, PrometheusRule, ServiceMonitor };

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const manifests = JSON.parse(Buffer.concat(chunks).toString("utf8"));
let failed = 0;
for (const manifest of manifests) {
  const Model = MODELS[manifest.kind];
  const where = `${manifest.kind}/${manifest.metadata?.name ?? "?"}`;
  if (!Model || manifest.apiVersion !== "monitoring.coreos.com/v1") {
    console.error(`${where}: not a monitoring.coreos.com/v1 kind this validator knows`);
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

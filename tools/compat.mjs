// Fails when the OpenAPI document breaks clients of the released one.
//
//   node tools/compat.mjs RELEASED CURRENT
//
// api-smart-diff classifies every change between the two documents; any change
// it calls breaking (a removed operation, response field or enum value, a new
// required request field, a narrowed type...) is printed and exits 1.
import { readFileSync } from "node:fs";
import { apiCompare } from "api-smart-diff";
import yaml from "js-yaml";

const [releasedPath, currentPath] = process.argv.slice(2);
if (!releasedPath || !currentPath) {
  console.error("usage: node tools/compat.mjs RELEASED CURRENT");
  process.exit(2);
}
const load = (path) => yaml.load(readFileSync(path, "utf8"));
const { diffs } = apiCompare(load(releasedPath), load(currentPath));

// api-smart-diff judges a generic API; two rules of this one make more breaking.
// The server refuses what the document does not declare (request bodies have
// additionalProperties: false, and an unknown query parameter answers 400), so
// taking away a request field or parameter breaks the clients that send it.
// Generated SDKs name their functions after operationIds, so renaming one breaks
// every caller's code.
const refusedFromNowOn = (diff) =>
  diff.action === "remove" &&
  diff.path[0] === "paths" &&
  (diff.path.includes("requestBody")
    ? diff.path.at(-2) === "properties"
    : diff.path.at(-2) === "parameters");
const operationRenamed = (diff) =>
  diff.path[0] === "paths" && diff.path.at(-1) === "operationId" && diff.action !== "add";
// It also calls changes to error bodies, response headers, query parameter
// schemas, servers and security non-breaking or leaves them unclassified; a
// client parses every documented answer and sends to the documented base path
// with the documented credentials, so here any of those that is not purely
// an addition breaks it. Component paths are skipped: each change there is
// reported again under every path that uses it.
const within = (diff, key) => diff.path.includes(key);
const responseNarrowed = (diff) =>
  diff.path[0] === "paths" &&
  within(diff, "responses") &&
  ((diff.action === "remove" && diff.path.at(-2) === "properties") ||
    (diff.action === "replace" && diff.path.at(-1) === "type") ||
    (within(diff, "headers") && diff.action !== "add"));
const requestNarrowed = (diff) =>
  diff.path[0] === "paths" &&
  ((within(diff, "parameters") &&
    within(diff, "schema") &&
    !(diff.action === "add" && diff.path.at(-2) === "enum") &&
    !(diff.action === "remove" && ["maxLength", "maximum"].includes(diff.path.at(-1)))) ||
    (within(diff, "requestBody") &&
      ["nullable", "additionalProperties"].includes(diff.path.at(-1)) &&
      diff.action !== "remove"));
const accessChanged = (diff) =>
  (diff.path[0] === "servers" && diff.action !== "add") ||
  ((diff.path[0] === "security" || (diff.path[0] === "paths" && within(diff, "security"))) &&
    !(diff.action === "add" && diff.path.at(-2) === "security"));
const breaking = diffs.filter(
  (diff) =>
    diff.type === "breaking" ||
    refusedFromNowOn(diff) ||
    operationRenamed(diff) ||
    responseNarrowed(diff) ||
    requestNarrowed(diff) ||
    accessChanged(diff),
);
const counts = {};
for (const diff of diffs) counts[diff.type] = (counts[diff.type] ?? 0) + 1;
console.log(`${currentPath} against ${releasedPath}:`, JSON.stringify(counts));
for (const diff of breaking) {
  console.log(`breaking: ${diff.description ?? diff.action} at /${diff.path.join("/")}`);
}
process.exit(breaking.length > 0 ? 1 : 0);

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
const breaking = diffs.filter(
  (diff) => diff.type === "breaking" || refusedFromNowOn(diff) || operationRenamed(diff),
);
const counts = {};
for (const diff of diffs) counts[diff.type] = (counts[diff.type] ?? 0) + 1;
console.log(`${currentPath} against ${releasedPath}:`, JSON.stringify(counts));
for (const diff of breaking) {
  console.log(`breaking: ${diff.description ?? diff.action} at /${diff.path.join("/")}`);
}
process.exit(breaking.length > 0 ? 1 : 0);

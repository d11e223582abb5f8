// Validates schemas/asyncapi.yaml with the official AsyncAPI parser: fails on any error
// diagnostic, prints the warnings and their count.
//
//   node tools/contract/validate-asyncapi.mjs [schemas/asyncapi.yaml]
//
// The payloads are JSON Schema draft 2020-12 files (schemaFormat
// application/schema+json;version=draft-2020-12). The parser knows only draft-07 and
// AsyncAPI schemas, and would merely warn that it has no parser for 2020-12 and skip the
// payloads; so this script registers one that checks each payload, after the parser has
// resolved its file references, against the 2020-12 meta-schema and compiles it with ajv.
// A misspelt keyword or a broken $ref in a payload is then an error here, not a warning.
import { resolve } from 'node:path';
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';
import Ajv2020 from 'ajv/dist/2020.js';

export const DRAFT_2020_12 = 'application/schema+json;version=draft-2020-12';

/**
 * An AsyncAPI schema parser for JSON Schema draft 2020-12 (see the header). For AsyncAPI 3
 * the parser calls only `parse` (its `validate` runs for AsyncAPI 2 documents alone), so
 * `parse` does the checking too, and records what it finds in `problems`.
 */
export function draft202012Parser(problems) {
  const check = (input) => {
    // A fresh ajv for each payload: the resolved payloads embed the same `$id`s (the
    // envelope, the definitions), which one ajv instance would refuse to register twice.
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    const where = `/${input.path.join('/')}`;
    if (!ajv.validateSchema(input.data)) {
      return ajv.errors.map(
        (e) => `${where}: not a draft 2020-12 schema: ${e.instancePath || '/'} ${e.message}`,
      );
    }
    try {
      ajv.compile(input.data);
    } catch (e) {
      return [`${where}: the schema does not compile: ${e.message}`];
    }
    return [];
  };
  return {
    getMimeTypes: () => [DRAFT_2020_12],
    async validate(input) {
      return check(input).map((message) => ({ message, path: [...input.path] }));
    },
    async parse(input) {
      problems.push(...check(input));
      return input.data;
    },
  };
}

/** A parser with the draft 2020-12 schema parser registered; it adds to `problems`. */
export function contractParser(problems = []) {
  const parser = new Parser();
  parser.registerSchemaParser(draft202012Parser(problems));
  return parser;
}

const SEVERITY = Object.fromEntries(
  Object.entries(DiagnosticSeverity).map(([name, value]) => [value, name.toLowerCase()]),
);

async function main() {
  const file = resolve(process.argv[2] ?? 'schemas/asyncapi.yaml');
  const problems = [];
  const { document, diagnostics } = await fromFile(contractParser(problems), file).parse();
  const counts = { error: 0, warning: 0, information: 0, hint: 0 };
  for (const d of diagnostics) {
    const severity = SEVERITY[d.severity] ?? 'error';
    counts[severity] += 1;
    if (severity !== 'hint') {
      console.log(`${severity}: ${d.code}: ${d.message} at /${d.path.join('/')}`);
    }
  }
  for (const p of problems) {
    console.log(`error: payload: ${p}`);
  }
  counts.error += problems.length;
  console.log(
    `asyncapi: ${file}: ${counts.error} errors, ${counts.warning} warnings, ` +
      `${counts.information} infos, ${counts.hint} hints`,
  );
  if (counts.error > 0 || document === undefined) {
    console.error('asyncapi: the document is not valid AsyncAPI; the errors above say where');
    process.exit(1);
  }
  // What the document describes, as a quick check that the references were followed.
  const channels = document.channels().length;
  const operations = document.operations().length;
  const messages = document.components().messages().length;
  console.log(`asyncapi: ${channels} channels, ${operations} operations, ${messages} messages`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}

// Checks that the rendered AsyncAPI documentation shows the whole contract: the DOM a
// headless Chromium dumps after running the page's scripts names the document's title,
// every operation and every message. A page the template failed to render (or rendered
// empty, or only the shell of) names none of them.
//
//   node tools/contract/check-docs.mjs DOM_FILE [schemas/asyncapi.yaml]
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fromFile } from '@asyncapi/parser';
import { contractParser } from './validate-asyncapi.mjs';

const [domFile, docFile = 'schemas/asyncapi.yaml'] = process.argv.slice(2);
if (!domFile) {
  console.error('usage: node tools/contract/check-docs.mjs DOM_FILE [schemas/asyncapi.yaml]');
  process.exit(2);
}
// Without scripts and styles: the page carries the whole document as data for its script,
// so a name found there says nothing about what the page shows.
const dom = readFileSync(domFile, 'utf8')
  .replace(/<script\b[\s\S]*?<\/script>/gi, '')
  .replace(/<style\b[\s\S]*?<\/style>/gi, '');
const { document } = await fromFile(contractParser(), resolve(docFile)).parse();
if (document === undefined) {
  console.error(`check-docs: ${docFile} does not parse; run validate-asyncapi.mjs for why`);
  process.exit(1);
}
const wanted = [document.info().title()]
  .concat(document.operations().all().map((o) => o.id()))
  .concat(document.components().messages().all().map((m) => m.name()));
const missing = wanted.filter((name) => !dom.includes(name));
if (missing.length > 0) {
  console.error(`check-docs: ${domFile} does not show ${missing.join(', ')}`);
  process.exit(1);
}
console.log(`check-docs: ${domFile} shows the title, every operation and every message (${wanted.length} names)`);

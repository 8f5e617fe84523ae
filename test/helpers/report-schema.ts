// Validates JSON reports against the committed schema (schema/report.schema.json) with ajv, strict mode.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';

export const SCHEMA_PATH = new URL('../../schema/report.schema.json', import.meta.url);

const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as object);

/** Parses a JSON report and fails the test, listing every violation, unless it matches the schema. */
export function assertValidReport(text: string): unknown {
  const doc: unknown = JSON.parse(text);
  const ok = validate(doc);
  assert.ok(ok, `JSON report does not match schema/report.schema.json:\n${ajv.errorsText(validate.errors, { separator: '\n' })}`);
  return doc;
}

// Unit tests of the shared job model (node --test; run by tests/lab/test_workers_unit.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffSeconds, isTransientError, jobIdOf, PermanentError, TransientError, validateQueueMessage } from "../workers/lib/jobs.js";

const good = {
  type: "EMAIL_DELIVERY",
  payload: { jobId: "j1", to: "user@example.com", template: "welcome", data: { name: "User" } },
  metadata: { attempts: 0, originalTimestamp: "2026-11-28T06:00:00.000Z" },
};

test("a design QueueMessage is valid", () => {
  assert.deepEqual(validateQueueMessage(good), []);
  const replay = structuredClone(good);
  replay.metadata.replay = { id: "rpl_0123", of: "abc", plan: "p", at: "2026-11-28T07:00:00Z" };
  replay.metadata.lastAttempt = "2026-11-28T07:00:00Z";
  assert.deepEqual(validateQueueMessage(replay), []);
});

test("every problem is reported", () => {
  assert.deepEqual(validateQueueMessage(null), ["a job must be a JSON object {type, payload, metadata}"]);
  const problems = validateQueueMessage({ type: "SMS", metadata: { attempts: -1, originalTimestamp: "yesterday" } });
  assert.equal(problems.length, 4);
  assert.match(problems[0], /type must be one of/);
  assert.match(problems[1], /payload is required/);
  assert.match(problems[2], /attempts must be an integer/);
  assert.match(problems[3], /originalTimestamp must be an ISO 8601/);
  const badId = structuredClone(good);
  badId.payload.jobId = 7;
  assert.match(validateQueueMessage(badId)[0], /payload.jobId must be a non-empty string/);
});

test("backoff doubles and is capped", () => {
  assert.deepEqual([1, 2, 3, 4, 10].map((a) => backoffSeconds(a, 1, 60)), [1, 2, 4, 8, 60]);
  assert.equal(backoffSeconds(0, 2, 60), 2);
});

test("error classes", () => {
  assert.equal(isTransientError(new TransientError("x")), true);
  assert.equal(isTransientError(new PermanentError("x")), false);
  assert.equal(isTransientError(new TypeError("x")), false);
  assert.equal(new TransientError("x").name, "TransientError");
});

test("job ids", () => {
  assert.equal(jobIdOf(good), "j1");
  assert.equal(jobIdOf({ payload: "text" }), null);
  assert.equal(jobIdOf(null), null);
});

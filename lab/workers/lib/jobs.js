// @ts-check
/**
 * The job model of processing-architecture.md, shared by every Worker of the lab.
 *
 * A job is a `QueueMessage` ({type, payload, metadata: {attempts, originalTimestamp, lastAttempt?}}).
 * The lab adds nothing to that shape except what the design leaves open:
 *  - `payload.jobId` (a string): the id edgeinvestigate joins logs, DLQ messages and replays on.
 *    The producer assigns one when the client did not.
 *  - `payload.inject` (optional): failure injection for the lab, see consumer/index.js.
 *  - `metadata.replay` (optional): `{id, of, plan, at}` written by `edgeinvestigate replay`;
 *    `id` is the idempotency key.
 */

/** @typedef {'IMAGE_PROCESSING'|'EMAIL_DELIVERY'|'REPORT_GENERATION'|'DATA_SYNC'|'WEBHOOK_PROCESSING'} JobType */
/**
 * @typedef {{attempts: number, originalTimestamp: string, lastAttempt?: string,
 *            replay?: {id: string, of?: string, plan?: string, at?: string}}} JobMetadata
 * @typedef {{type: JobType, payload: any, metadata: JobMetadata}} QueueMessage
 */

/** @type {readonly JobType[]} */
export const JOB_TYPES = Object.freeze([
  "IMAGE_PROCESSING",
  "EMAIL_DELIVERY",
  "REPORT_GENERATION",
  "DATA_SYNC",
  "WEBHOOK_PROCESSING",
]);

/** A failure worth retrying: a timeout, a 429/5xx from a dependency, an outage. */
export class TransientError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "TransientError";
  }
}

/** A failure no retry can fix: invalid input, a 4xx from a dependency. */
export class PermanentError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "PermanentError";
  }
}

/** @param {unknown} error */
export function isTransientError(error) {
  return error instanceof TransientError;
}

/**
 * Exponential backoff for `message.retry({delaySeconds})`: base * 2^(attempts-1), capped.
 * @param {number} attempts the runtime's `message.attempts` (1 on the first delivery)
 * @param {number} base seconds
 * @param {number} cap seconds (Queues accepts at most 43200 safely)
 */
export function backoffSeconds(attempts, base, cap) {
  const n = Math.max(1, Math.floor(attempts));
  return Math.min(cap, Math.max(0, Math.round(base * 2 ** (n - 1))));
}

/** @param {unknown} value */
function isIsoTimestamp(value) {
  return typeof value === "string" && value.length >= 10 && !Number.isNaN(Date.parse(value));
}

/**
 * Check that `value` is a `QueueMessage`. Returns the list of problems (empty when valid).
 * @param {unknown} value
 * @returns {string[]}
 */
export function validateQueueMessage(value) {
  const problems = [];
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return ["a job must be a JSON object {type, payload, metadata}"];
  }
  const job = /** @type {Record<string, any>} */ (value);
  if (!JOB_TYPES.includes(job.type)) {
    problems.push(`type must be one of ${JOB_TYPES.join(", ")} (got ${JSON.stringify(job.type)})`);
  }
  if (!("payload" in job) || job.payload === undefined) {
    problems.push("payload is required (any JSON value)");
  } else if (
    job.payload !== null &&
    typeof job.payload === "object" &&
    "jobId" in job.payload &&
    (typeof job.payload.jobId !== "string" || job.payload.jobId.length === 0 || job.payload.jobId.length > 200)
  ) {
    problems.push("payload.jobId must be a non-empty string of at most 200 characters");
  }
  const meta = job.metadata;
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
    problems.push("metadata must be an object {attempts, originalTimestamp, lastAttempt?}");
  } else {
    if (!Number.isInteger(meta.attempts) || meta.attempts < 0) {
      problems.push("metadata.attempts must be an integer >= 0");
    }
    if (!isIsoTimestamp(meta.originalTimestamp)) {
      problems.push("metadata.originalTimestamp must be an ISO 8601 timestamp");
    }
    if (meta.lastAttempt !== undefined && !isIsoTimestamp(meta.lastAttempt)) {
      problems.push("metadata.lastAttempt must be an ISO 8601 timestamp when present");
    }
    if (meta.replay !== undefined && (meta.replay === null || typeof meta.replay.id !== "string")) {
      problems.push("metadata.replay must be an object with a string id when present");
    }
  }
  return problems;
}

/**
 * The job id of a job body (`payload.jobId`), or null.
 * @param {any} body
 * @returns {string|null}
 */
export function jobIdOf(body) {
  const payload = body && typeof body === "object" ? body.payload : undefined;
  return payload && typeof payload === "object" && typeof payload.jobId === "string" ? payload.jobId : null;
}

/**
 * One structured log line, following edgeinvestigate's logging convention (schema.py):
 * `{event, jobId, type, attempt, messageId, error?, ...}` as one JSON object per console line.
 * @param {"log"|"info"|"warn"|"error"} level
 * @param {Record<string, unknown>} fields
 */
export function logEvent(level, fields) {
  console[level](JSON.stringify(fields));
}

/**
 * JSON response helper.
 * @param {unknown} data
 * @param {number} [status]
 */
export function json(data, status = 200) {
  return new Response(JSON.stringify(data), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

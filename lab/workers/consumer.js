// @ts-check
/**
 * jobs-consumer: the design's queue() handler for all five job types.
 *
 * For each message (processing-architecture.md, Error Handling):
 *  - success                -> ack()
 *  - transient error        -> retry({delaySeconds}) with exponential backoff; once the runtime has
 *                              delivered it max_retries + 1 times it moves it to the dead letter queue
 *                              itself (the queue's `max_retries` and `dead_letter_queue`)
 *  - any other error        -> DEAD_LETTER_QUEUE.send({original: message, error}) then ack()
 * `original` is the runtime Message; JSON turns it into {id, timestamp, body, attempts}.
 *
 * Every step logs one JSON line (edgeinvestigate's logging convention):
 * {event, jobId, type, attempt, messageId, queue, deploy, error?, errorName?, delaySeconds?, replayId?}.
 * `error` is `error.message`, the same text the {original, error} envelope carries, so that log lines
 * and dead-lettered messages of one failure share one template.
 *
 * Failure injection (lab only), in `payload.inject`:
 *  - {"transient": n}         the first n deliveries fail with a TransientError ("always" = every one)
 *  - {"permanent": "reason"}  fails with a PermanentError
 * and for DATA_SYNC a `payload.cursor` that is not JSON crashes the handler outside the per-message
 * try (a poison message): the runtime retries the whole batch and the trace carries the exception.
 * Outside the payload:
 *  - the var EMAIL_RENDERER = "v2" is the bad deploy: EMAIL_DELIVERY throws a TypeError
 *  - the KV flag outage:<TYPE> = {until} (set through the producer) makes that type fail transiently
 *
 * Redeliveries of a message already acked or dead-lettered (at-least-once delivery; the local
 * broker also redelivers acked messages when a later message of the batch throws) and second copies
 * of a replay (same metadata.replay.id) are acked and logged as job_duplicate_skipped.
 */
import { backoffSeconds, isTransientError, jobIdOf, logEvent, PermanentError, TransientError } from "./lib/jobs.js";

/** @param {any} payload */
function injected(payload) {
  return payload && typeof payload === "object" && payload.inject && typeof payload.inject === "object"
    ? payload.inject
    : {};
}

/**
 * @param {any} body
 * @param {Message<any>} message
 * @param {any} env
 */
async function checkInjectedFailures(body, message, env) {
  const inject = injected(body.payload);
  if (inject.permanent) throw new PermanentError(String(inject.permanent));
  if (inject.transient === "always" || (Number.isInteger(inject.transient) && message.attempts <= inject.transient)) {
    throw new TransientError(`upstream timeout after 10000 ms (${body.type.toLowerCase()} dependency)`);
  }
  const outage = await env.FLAGS.get(`outage:${body.type}`, "json");
  if (outage && Date.now() < outage.until) {
    throw new TransientError(`upstream returned 503 Service Unavailable: ${outage.reason}`);
  }
}

/** @param {any} payload */
async function processImage(payload) {
  if (payload && payload.format && !["png", "jpeg", "webp"].includes(payload.format)) {
    throw new PermanentError(`unsupported image format: ${payload.format}`);
  }
}

/**
 * @param {any} payload
 * @param {any} env
 */
async function sendEmail(payload, env) {
  if (!payload || typeof payload.to !== "string" || !payload.to.includes("@")) {
    throw new PermanentError("invalid recipient address");
  }
  if (env.EMAIL_RENDERER === "v2") {
    // The bad version: the new renderer reads data.profile.locale, which the jobs do not carry.
    const data = payload.data ?? {};
    const locale = data.profile.locale;
    return `${payload.template}:${locale}`;
  }
  return `${payload.template}:en`;
}

/** @param {any} payload */
async function generateReport(payload) {
  if (payload && payload.reportId === undefined) throw new PermanentError("reportId is required");
}

/** @param {any} payload */
async function syncData(payload) {
  if (payload && payload.source === undefined) throw new PermanentError("source is required");
}

/** @param {any} payload */
async function processWebhook(payload) {
  if (payload && payload.url !== undefined && !String(payload.url).startsWith("https://")) {
    throw new PermanentError("webhook url must be https");
  }
}

/**
 * @param {any} body
 * @param {Message<any>} message
 * @param {any} env
 */
async function processJob(body, message, env) {
  await checkInjectedFailures(body, message, env);
  switch (body.type) {
    case "IMAGE_PROCESSING":
      return processImage(body.payload);
    case "EMAIL_DELIVERY":
      return sendEmail(body.payload, env);
    case "REPORT_GENERATION":
      return generateReport(body.payload);
    case "DATA_SYNC":
      return syncData(body.payload);
    case "WEBHOOK_PROCESSING":
      return processWebhook(body.payload);
    default:
      throw new PermanentError(`unknown job type: ${JSON.stringify(body.type)}`);
  }
}

/** @param {Message<any>} message */
function dedupeKey(message) {
  const replayId = message.body?.metadata?.replay?.id;
  return `handled:${typeof replayId === "string" ? replayId : message.id}`;
}

export default {
  /**
   * @param {MessageBatch<any>} batch
   * @param {any} env
   */
  async queue(batch, env) {
    const maxRetries = Number(env.MAX_RETRIES ?? 3);
    const base = Number(env.RETRY_BASE_SECONDS ?? 1);
    const cap = Number(env.RETRY_MAX_SECONDS ?? 60);
    for (const message of batch.messages) {
      const body = message.body ?? {};
      const fields = {
        jobId: jobIdOf(body),
        type: body.type,
        attempt: message.attempts,
        messageId: message.id,
        queue: batch.queue,
        deploy: env.DEPLOY_VERSION,
        replayId: body.metadata?.replay?.id,
        replayOf: body.metadata?.replay?.of,
      };
      const key = dedupeKey(message);
      const handled = await env.FLAGS.get(key);
      if (handled !== null) {
        message.ack();
        logEvent("log", { event: "job_duplicate_skipped", ...fields, previously: handled });
        continue;
      }
      logEvent("log", { event: "job_started", ...fields });
      // A poison message: this parse runs outside the per-message try, like any unguarded code.
      if (body.type === "DATA_SYNC" && typeof body.payload?.cursor === "string") JSON.parse(body.payload.cursor);
      try {
        await processJob(body, message, env);
        message.ack();
        await env.FLAGS.put(key, "succeeded");
        logEvent("log", { event: "job_succeeded", ...fields });
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (isTransientError(error)) {
          const delaySeconds = backoffSeconds(message.attempts, base, cap);
          message.retry({ delaySeconds });
          logEvent("warn", {
            event: message.attempts > maxRetries ? "job_retries_exhausted" : "job_retry_scheduled",
            ...fields,
            delaySeconds,
            error: error.message,
            errorName: error.name,
          });
        } else {
          await env.DEAD_LETTER_QUEUE.send({ original: message, error: error.message }, { contentType: "json" });
          message.ack();
          await env.FLAGS.put(key, "dead_lettered");
          logEvent("error", { event: "job_dead_lettered", ...fields, error: error.message, errorName: error.name });
        }
      }
    }
  },
};

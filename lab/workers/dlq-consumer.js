// @ts-check
/**
 * jobs-dlq-consumer: hands every dead-lettered message to edgeinvestigate's sandbox.
 *
 * The local runtime has no Queues REST API (no pull, peek or ack), so the lab's dead letter queue
 * is consumed here and loaded into the sandbox's copy of the queue through its admin API:
 *
 *   POST {SANDBOX_URL}/__admin/accounts/{ACCOUNT_ID}/queues/{SANDBOX_DLQ}/messages
 *   {"messages": [{id, body, content_type: "json", timestamp_ms, attempts}]}
 *
 * What is kept, and how (this is the documented mapping):
 *  - id, timestamp_ms: the runtime's own message id and timestamp, unchanged. A message the runtime
 *    moved after max_retries keeps the id and timestamp it had on the source queue; an
 *    {original, error} envelope is a new message, and the source id/timestamp/attempts are inside
 *    `original`.
 *  - body and content type: unchanged (the runtime delivers json bodies as the parsed value).
 *  - attempts: how many times the source consumer received the job. For an envelope that is
 *    `original.attempts`; for a message moved by the runtime it is SOURCE_MAX_RETRIES + 1, because the
 *    runtime moves a message exactly when that many deliveries have failed. (The runtime restarts
 *    the counter at 1 on the dead letter queue, so `message.attempts` here would say nothing.)
 *
 * If the sandbox does not answer 2xx the handler throws: nothing is acked and the runtime delivers
 * the whole batch again (the sandbox keeps the ids, so a repeat is recognisable).
 */
import { jobIdOf, logEvent } from "./lib/jobs.js";

/**
 * @param {Message<any>} message
 * @param {number} sourceMaxRetries
 */
function toSandboxMessage(message, sourceMaxRetries) {
  const body = message.body;
  const original = body && typeof body === "object" && "original" in body ? body.original : undefined;
  const wrapped = original !== undefined;
  const attempts = wrapped && Number.isInteger(original?.attempts) ? original.attempts : sourceMaxRetries + 1;
  return {
    id: message.id,
    body,
    content_type: "json",
    timestamp_ms: message.timestamp.getTime(),
    attempts,
  };
}

export default {
  /**
   * @param {MessageBatch<any>} batch
   * @param {any} env
   */
  async queue(batch, env) {
    const sourceMaxRetries = Number(env.SOURCE_MAX_RETRIES ?? 3);
    const messages = batch.messages.map((m) => toSandboxMessage(m, sourceMaxRetries));
    const url = `${env.SANDBOX_URL}/__admin/accounts/${env.ACCOUNT_ID}/queues/${env.SANDBOX_DLQ}/messages`;
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${env.SANDBOX_TOKEN}` },
      body: JSON.stringify({ messages }),
    });
    if (!response.ok) {
      const text = (await response.text()).slice(0, 300);
      throw new Error(`sandbox refused ${messages.length} dead-lettered messages: HTTP ${response.status} ${text}`);
    }
    for (const [i, message] of batch.messages.entries()) {
      message.ack();
      const body = message.body ?? {};
      const job = body.original !== undefined ? (body.original?.body ?? body.original) : body;
      logEvent("log", {
        event: "dlq_forwarded",
        jobId: jobIdOf(job),
        type: job?.type,
        attempt: messages[i].attempts,
        messageId: message.id,
        originalMessageId: body.original?.id ?? message.id,
        queue: batch.queue,
        envelope: body.original !== undefined ? "wrapped" : "raw",
        error: typeof body.error === "string" ? body.error : undefined,
      });
    }
  },
};

// @ts-check
/**
 * jobs-producer: the "Worker API" that creates jobs (processing-architecture.md, Job Lifecycle step 1).
 *
 *   POST /jobs            one QueueMessage, or {"jobs": [QueueMessage, ...]} (at most 100)
 *                         -> 202 {accepted, jobs: [{jobId, type}]}; 400 with every problem otherwise
 *   PUT  /admin/outage    {"type": JobType, "seconds": n} starts a simulated dependency outage
 *   DELETE /admin/outage  {"type": JobType} ends it
 *   GET  /health
 *   scheduled()           the cron trigger (Scheduled queue: time-based tasks via Cron Triggers):
 *                         enqueues the daily usage report onto the scheduled queue, job id
 *                         `scheduled-<scheduledTime>` (in the lab: GET /cdn-cgi/handler/scheduled)
 *
 * Valid jobs are sent to the immediate queue as JSON messages. A job without `payload.jobId` gets
 * one. Replays (from `edgeinvestigate replay`, forwarded by the sandbox) are ordinary jobs that
 * carry `metadata.replay`; they enter the runtime exactly like new jobs.
 */
import { JOB_TYPES, jobIdOf, json, logEvent, validateQueueMessage } from "./lib/jobs.js";

const MAX_JOBS_PER_REQUEST = 100;

/**
 * @param {Request} request
 * @returns {Promise<{value?: any, error?: string}>}
 */
async function readJson(request) {
  const text = await request.text();
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { error: `the request body is not JSON: ${/** @type {Error} */ (error).message}` };
  }
}

/**
 * @param {Request} request
 * @param {any} env
 */
async function createJobs(request, env) {
  const { value, error } = await readJson(request);
  if (error) return json({ error }, 400);
  const batch = value && typeof value === "object" && Array.isArray(value.jobs);
  /** @type {any[]} */
  const jobs = batch ? value.jobs : [value];
  if (jobs.length === 0 || jobs.length > MAX_JOBS_PER_REQUEST) {
    return json({ error: `send between 1 and ${MAX_JOBS_PER_REQUEST} jobs per request` }, 400);
  }
  const problems = [];
  for (const [index, job] of jobs.entries()) {
    for (const problem of validateQueueMessage(job)) problems.push({ index, problem });
  }
  if (problems.length > 0) {
    logEvent("warn", { event: "job_rejected", problems: problems.slice(0, 10), count: jobs.length });
    return json({ error: "invalid QueueMessage", problems }, 400);
  }
  for (const job of jobs) {
    if (job.payload !== null && typeof job.payload === "object" && !Array.isArray(job.payload) && !job.payload.jobId) {
      job.payload.jobId = crypto.randomUUID();
    }
  }
  await env.IMMEDIATE_QUEUE.sendBatch(jobs.map((body) => ({ body, contentType: "json" })));
  for (const job of jobs) {
    logEvent("log", {
      event: "job_enqueued",
      jobId: jobIdOf(job),
      type: job.type,
      attempt: job.metadata.attempts,
      queue: "jobs-immediate",
      replayId: job.metadata.replay?.id,
      replayOf: job.metadata.replay?.of,
    });
  }
  return json({ accepted: jobs.length, jobs: jobs.map((job) => ({ jobId: jobIdOf(job), type: job.type })) }, 202);
}

/**
 * @param {Request} request
 * @param {any} env
 */
async function outage(request, env) {
  const { value, error } = await readJson(request);
  if (error) return json({ error }, 400);
  if (!value || !JOB_TYPES.includes(value.type)) {
    return json({ error: `type must be one of ${JOB_TYPES.join(", ")}` }, 400);
  }
  const key = `outage:${value.type}`;
  if (request.method === "DELETE") {
    await env.FLAGS.delete(key);
    logEvent("log", { event: "outage_ended", type: value.type });
    return json({ type: value.type, outage: false });
  }
  const seconds = Number(value.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
    return json({ error: "seconds must be a number in (0, 3600]" }, 400);
  }
  const until = Date.now() + seconds * 1000;
  await env.FLAGS.put(key, JSON.stringify({ until, reason: value.reason ?? "dependency unavailable" }));
  logEvent("log", { event: "outage_started", type: value.type, until: new Date(until).toISOString() });
  return json({ type: value.type, outage: true, until: new Date(until).toISOString() });
}

/**
 * @param {ScheduledController} controller
 * @param {any} env
 */
async function scheduled(controller, env) {
  const at = new Date(controller.scheduledTime).toISOString();
  const job = {
    type: "REPORT_GENERATION",
    payload: { jobId: `scheduled-${controller.scheduledTime}`, reportId: "daily-usage", range: "1d", cron: controller.cron },
    metadata: { attempts: 0, originalTimestamp: at },
  };
  await env.SCHEDULED_QUEUE.send(job, { contentType: "json" });
  logEvent("log", { event: "job_enqueued", jobId: job.payload.jobId, type: job.type, attempt: 0, queue: "jobs-scheduled" });
}

export default {
  scheduled,

  /**
   * @param {Request} request
   * @param {any} env
   */
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/health") return json({ ok: true, worker: "jobs-producer" });
    if (pathname === "/jobs") {
      if (request.method !== "POST") return json({ error: "use POST /jobs" }, 405);
      return createJobs(request, env);
    }
    if (pathname === "/admin/outage") {
      if (request.method !== "PUT" && request.method !== "DELETE") return json({ error: "use PUT or DELETE" }, 405);
      return outage(request, env);
    }
    return json({ error: `no route for ${request.method} ${pathname}` }, 404);
  },
};

// @ts-check
/**
 * jobs-tail: the Tail Worker of every other lab Worker. It POSTs each `TraceItem[]` it receives,
 * as `JSON.stringify(events)`, to edgeinvestigate's collector (COLLECTOR_URL), which appends one
 * array per line to a TraceItem JSONL file (`edgeinvestigate collect --listen ... --out ...`).
 * A failed POST is tried twice more; after that the events are lost, and the collector's line
 * count versus the runtime's invocations shows it.
 */
const ATTEMPTS = 3;

export default {
  /**
   * @param {TraceItem[]} events
   * @param {any} env
   */
  async tail(events, env) {
    const body = JSON.stringify(events);
    let last = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        const response = await fetch(env.COLLECTOR_URL, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        if (response.ok) return;
        last = `HTTP ${response.status}`;
      } catch (error) {
        last = String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
    throw new Error(`collector did not take ${events.length} trace items after ${ATTEMPTS} attempts: ${last}`);
  },
};

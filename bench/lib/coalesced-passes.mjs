// A scheduling loop as the engine's `wake()` runs one (JobController): for bench/store.mjs's model of the engine and
// bench/experiments/store-designs.mjs.

/**
 * A `wake()` that runs `pass` on the next turn, one pass at a time: wake-ups during a pass coalesce into one more
 * pass. A pass that throws hands its error to `reject` and ends the loop.
 */
export function coalescedPasses(pass, reject) {
  let passing = false;
  let requested = false;
  return () => {
    requested = true;
    if (passing) return;
    passing = true;
    setImmediate(async () => {
      try {
        while (requested) {
          requested = false;
          await pass();
        }
      } catch (error) {
        reject(error);
      } finally {
        passing = false;
      }
    });
  };
}

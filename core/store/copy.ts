/**
 * A copy for a reader. A run's params stay in memory as the trigger gave them, and an app's own
 * objects may hold what the structured clone refuses (a function, a promise): that run is then
 * copied as its JSON, which is what the store keeps of it, rather than fail every read of the list.
 */
export const clone = <T>(value: T): T => {
  try {
    return structuredClone(value);
  } catch {
    return JSON.parse(JSON.stringify(value)) as T;
  }
};

// The part of fs-native-extensions (which ships no types) that lock.ts uses.
declare module 'fs-native-extensions' {
  /** Takes an exclusive lock on the open file `fd` without waiting; false when another open file holds one. */
  export function tryLock(fd: number): boolean;
  export function unlock(fd: number): void;
}

/** Where file targets write their inputs: tmpfs when there is one (a million small files). */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';

export function scratchDir(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

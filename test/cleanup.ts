/** Setup file (vitest.config.ts): after each test file, remove the temporary folders it made with tempDir(). */
import { afterAll } from 'vitest'
import { removeTempDirs } from './temp-dirs.ts'

afterAll(removeTempDirs)

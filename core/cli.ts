import { Command, Option } from 'commander';
import { startApp, validateProject } from './app.js';
import { isHostError } from './errors.js';

/**
 * `jobhost <command>`. `start` runs the host; `validate` checks the config and plugins without
 * starting. Commands that talk to a running host over HTTP are added with the server.
 */
export function buildCli(): Command {
  const program = new Command('jobhost')
    .description('An event-driven plugin host for background jobs')
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });

  program
    .command('start')
    .description('start the host with config/jobhost.json (or $JOBHOST_CONFIG) and the plugins directory')
    .addOption(new Option('--config <path>', 'config file').env('JOBHOST_CONFIG'))
    .action(async (opts: { config?: string }) => {
      const env = { ...process.env, ...(opts.config ? { JOBHOST_CONFIG: opts.config } : {}) };
      try {
        await startApp({ env });
      } catch (err) {
        console.error(`jobhost: cannot start: ${isHostError(err) ? `${err.code} ${err.message}` : String(err)}`);
        process.exit(1);
      }
    });

  program
    .command('validate')
    .description('check the config file and every plugin file; exits 1 with the reasons if any is invalid')
    .addOption(new Option('--config <path>', 'config file').env('JOBHOST_CONFIG'))
    .action(async (opts: { config?: string }) => {
      const env = { ...process.env, ...(opts.config ? { JOBHOST_CONFIG: opts.config } : {}) };
      const { problems, warnings, jobs } = await validateProject({ env });
      for (const w of warnings) console.log(`warning  ${w.file}  ${w.code}  ${w.message}`);
      for (const p of problems) console.log(`error    ${p.file}  ${p.code}  ${p.message}`);
      if (problems.length > 0) {
        console.log(`${problems.length} problem${problems.length > 1 ? 's' : ''} found`);
        process.exit(1);
      }
      console.log(`ok: config and ${jobs.length} plugin${jobs.length === 1 ? '' : 's'} valid (${jobs.join(', ')})`);
      // Plugin files may leave timers behind at import; validation is done.
      process.exit(0);
    });

  return program;
}

await buildCli().parseAsync(process.argv);

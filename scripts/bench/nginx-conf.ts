// The nginx the namespace benchmarks serve from: one worker (the CPU comparison stays about
// the proxies), no access log, keep-alive that outlasts any run, every temp path under `dir`
// (the benchmark's own folder, not /var), static files from `dir`/www on each of `ports`.
export function nginxConf(dir: string, ports: readonly number[], opts: { workerConnections: number; serverExtra?: string }): string {
  return `worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections ${opts.workerConnections}; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  default_type application/octet-stream;
  keepalive_timeout 300s;
  keepalive_requests 10000000;
  server {
${ports.map((p) => `    listen ${p};\n`).join('')}    root ${dir}/www;
${opts.serverExtra ?? ''}  }
}
`
}

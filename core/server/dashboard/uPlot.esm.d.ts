// The types of `./uPlot.esm.js`, the file of node_modules/uplot that the server serves under that
// name (see VENDOR in core/server/dashboard.ts): what `tsc -p core/server/dashboard` checks charts.js against.
import uPlot from 'uplot';

export default uPlot;

/* plot_attr.c: the attribution grid (cam.md §4): rows = images, columns = the input and one
 * heat-map overlay per method, equal cells, method names as column headers, row labels above
 * the input cells.  Built from lk_plot_image_grid and lk_plot_overlay on a laid-out figure. */
#include <string.h>

#include "render-impl.h"

lk_status lk_plot_attribution_grid(lk_fig *fig, const lk_tensor *images, int n_maps,
                                   const lk_tensor *const *maps, const lk_attr_grid_opts *o,
                                   lk_error *err) {
    if (images->ndim != 4 || images->shape[1] != 3)
        return LK_FAIL(err, LK_ESHAPE, "attribution grid: images must be (N, 3, H, W)");
    int64_t N = images->shape[0], H = images->shape[2], W = images->shape[3];
    for (int j = 0; j < n_maps; j++)
        if (maps[j]->ndim != 3 || maps[j]->shape[0] != N || maps[j]->shape[1] != H ||
            maps[j]->shape[2] != W)
            return LK_FAIL(err, LK_ESHAPE, "attribution grid: map %d must be (%lld, %lld, %lld)",
                           j, (long long)N, (long long)H, (long long)W);
    lk_status st = LK_OK;
    for (int64_t i = 0; i < N && st == LK_OK; i++) {
        lk_axes     *ax = NULL;
        int64_t      s1[4] = {1, 3, H, W}, s3[3] = {3, H, W}, s2[2] = {H, W};
        float       *img   = (float *)images->data + i * 3 * H * W;
        lk_tensor    one   = lk_tensor_view(LK_F32, 4, s1, img);
        lk_tensor    rgb   = lk_tensor_view(LK_F32, 3, s3, img);
        lk_grid_opts go;
        memset(&go, 0, sizeof go);
        go.ncols      = 1;
        go.title      = o && o->row_labels ? o->row_labels[i] : NULL;
        go.title_size = o ? o->label_size : 0;
        go.gutter     = 1e-6;
        st            = lk_fig_panel(fig, (int)i, 0, 1, 1, &ax, err);
        if (st == LK_OK) st = lk_plot_image_grid(ax, &one, &go, err);
        for (int j = 0; j < n_maps && st == LK_OK; j++) {
            int             sg = o && o->signed_maps && o->signed_maps[j];
            lk_overlay_opts oo;
            memset(&oo, 0, sizeof oo);
            oo.alpha          = o && o->alpha > 0 ? o->alpha : 0.5;
            oo.heat.title     = i == 0 && o && o->col_titles ? o->col_titles[j] : NULL;
            oo.heat.cmap      = sg ? LK_CMAP(LK_CMAP_BWR) : (o ? o->cmap : LK_CMAP(LK_CMAP_JET));
            oo.heat.norm.vmin = sg ? -1 : 0;
            oo.heat.norm.vmax = 1;
            lk_tensor heat    = lk_tensor_view(LK_F32, 2, s2, (float *)maps[j]->data + i * H * W);
            st                = lk_fig_panel(fig, (int)i, j + 1, 1, 1, &ax, err);
            if (st == LK_OK) st = lk_plot_overlay(ax, &rgb, &heat, &oo, err);
        }
    }
    return st;
}
